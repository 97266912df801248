"""Worker leases: who holds which claimed deliveries, and what happens when a worker dies.

Every dispatcher registers a row in ``workers`` (host, process id, heartbeat, lease
expiry) before its first claim and renews the lease while it runs. Claimed rows carry
the worker's id. A worker whose lease has expired is dead, and so at once is a worker
on this host whose process no longer exists (SIGKILL, the OOM killer). Whoever touches
the queue next (a claim, ``dripline status``, ``dripline requeue``) runs
:func:`expire_dead_workers`, in its own transaction:

- rows the dead worker had ``claimed`` but never handed to the sender go back to
  ``scheduled`` (they are sent normally, by anyone);
- rows it had in ``sending`` (their data was being given to the sender) become
  ``ambiguous``: the relay may have accepted them, so they are not re-sent unless an
  operator asks (``dripline requeue --ambiguous``);
- its ``workers`` row is deleted.

On PostgreSQL this maintenance takes a transaction-level advisory lock with
try-lock semantics, so two workers never do it at once (the second skips it) and
nobody waits for it; on SQLite ``BEGIN IMMEDIATE`` already serialises writers. It
also never waits on a row lock: a worker stopped half-way through a transaction
(SIGSTOP) still holds its rows' locks until the server ends its session (see
:func:`dripline.store._engine.stall_limits`), so rows (and ``workers`` rows) locked
by someone are skipped (``FOR UPDATE SKIP LOCKED``), and a dead worker whose rows
were not all handed back keeps its ``workers`` row for the next pass to finish.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, select, text, update

from ._models import Delivery, Worker
from ._values import from_db_time, to_db_time

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "HOST",
    "Clock",
    "ExpiredLeases",
    "expire_dead_workers",
    "pid_alive",
    "register_worker",
    "renew_worker",
    "utc_now",
]

log = logging.getLogger("dripline.store.leases")

DEFAULT_LEASE_SECONDS = 60.0
HOST = socket.gethostname()
# pg_try_advisory_xact_lock key for lease maintenance: "dripline" in ASCII, as one bigint.
MAINTENANCE_LOCK = 0x647269706C696E65

Clock = Callable[[], datetime]

_D = Delivery.__table__
_W = Worker.__table__


def utc_now() -> datetime:
    """The wall clock, aware UTC: leases always use real time, never a pass's ``--now``."""
    return datetime.now(UTC)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    try:  # Linux: a killed child not yet reaped by its parent is a zombie, state "Z"
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@dataclass(frozen=True)
class ExpiredLeases:
    """What :func:`expire_dead_workers` did."""

    workers: int = 0
    returned: int = 0  # claimed, never attempted: back to 'scheduled'
    ambiguous: int = 0  # were 'sending': now 'ambiguous'


def register_worker(conn: Connection, now: datetime, lease_seconds: float) -> int:
    """Insert this process's ``workers`` row; its id."""
    at = to_db_time(now)
    result = conn.execute(
        insert(_W).values(
            host=HOST,
            pid=os.getpid(),
            started_at=at,
            heartbeat_at=at,
            lease_expires_at=to_db_time(now + timedelta(seconds=lease_seconds)),
        )
    )
    worker_id = result.inserted_primary_key[0]  # type: ignore[index]
    log.info(
        "worker %s registered (%s pid %s, lease %g s)", worker_id, HOST, os.getpid(), lease_seconds
    )
    return int(worker_id)


def renew_worker(conn: Connection, worker_id: int, now: datetime, lease_seconds: float) -> bool:
    """Extend the lease; re-creates the row (same id) if another worker expired it.

    Returns False when the row had been deleted: this worker was taken for dead, its
    claimed rows were handed back and its in-flight rows turned ambiguous (an outcome
    it still records for those is kept).
    """
    at = to_db_time(now)
    expires = to_db_time(now + timedelta(seconds=lease_seconds))
    done = conn.execute(
        update(_W).where(_W.c.id == worker_id).values(heartbeat_at=at, lease_expires_at=expires)
    )
    if done.rowcount == 1:
        return True
    conn.execute(
        insert(_W).values(
            id=worker_id,
            host=HOST,
            pid=os.getpid(),
            started_at=at,
            heartbeat_at=at,
            lease_expires_at=expires,
        )
    )
    log.warning("worker %s: its lease had expired and was taken over; renewed", worker_id)
    return False


def _dead(row: object, now: datetime, me: int | None) -> bool:
    if row.id == me:  # type: ignore[attr-defined]
        return False
    expires = from_db_time(row.lease_expires_at)  # type: ignore[attr-defined]
    if expires is not None and expires < now:
        return True
    # Another process on this host that no longer exists. Not this process: two queues in
    # one process (tests, a command inside `dripline run`) rely on the lease alone.
    host, pid = row.host, row.pid  # type: ignore[attr-defined]
    return host == HOST and pid != os.getpid() and not pid_alive(pid)


def expire_dead_workers(conn: Connection, now: datetime, me: int | None = None) -> ExpiredLeases:
    """Hand back what dead workers held (see the module docstring); inside ``conn``'s
    transaction. ``me`` is the caller's own worker id (never taken for dead)."""
    rows = conn.execute(select(_W.c.id, _W.c.host, _W.c.pid, _W.c.lease_expires_at)).all()
    dead = [r for r in rows if _dead(r, now, me)]
    if not dead:
        return ExpiredLeases()
    postgres = conn.dialect.name == "postgresql"
    if postgres and not conn.scalar(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": MAINTENANCE_LOCK}
    ):
        return ExpiredLeases()  # another worker is doing it right now
    if postgres:
        dead = _unlocked_workers(conn, dead)
        if not dead:
            return ExpiredLeases()
    held = (
        select(_D.c.id, _D.c.status, _D.c.worker_id)
        .where(_D.c.status.in_(("claimed", "sending")), _D.c.worker_id.in_([r.id for r in dead]))
        .order_by(_D.c.id)
    )
    unfinished: set[int] = set()
    if postgres:
        # Rows a stalled transaction still locks are left for a later pass (their owner's
        # session is ended by the server's idle-in-transaction timeout).
        rows = conn.execute(held.with_for_update(skip_locked=True, of=_D)).all()
        locked = {r.id for r in rows}
        unfinished = {r.worker_id for r in conn.execute(held) if r.id not in locked}
    else:
        rows = conn.execute(held).all()
    claimed = [r.id for r in rows if r.status == "claimed"]
    returned = 0
    for part in _parts(claimed):
        returned += conn.execute(
            update(_D)
            .where(_D.c.id.in_(part), _D.c.status == "claimed")
            .values(status="scheduled", worker_id=None)
        ).rowcount
    ambiguous = 0
    for row in dead:
        sending = [r.id for r in rows if r.status == "sending" and r.worker_id == row.id]
        if not sending:
            continue
        ambiguous += conn.execute(
            update(_D)
            .where(_D.c.id.in_(sending), _D.c.status == "sending")
            .values(
                status="ambiguous",
                last_error=(
                    f"worker {row.id} ({row.host} pid {row.pid}) stopped while sending: "
                    "the relay may have accepted it"
                ),
            )
        ).rowcount
    done = [r for r in dead if r.id not in unfinished]
    if done:
        conn.execute(delete(_W).where(_W.c.id.in_([r.id for r in done])))
    for row in done:
        log.warning(
            "worker %s (%s pid %s) is gone: its unsent claims were handed back",
            row.id,
            row.host,
            row.pid,
        )
    return ExpiredLeases(len(done), returned, ambiguous)


def _unlocked_workers(conn: Connection, dead: list[Any]) -> list[Any]:
    """The ``dead`` workers whose row nobody has locked (a stalled renewal has)."""
    free = set(
        conn.scalars(
            select(_W.c.id)
            .where(_W.c.id.in_([r.id for r in dead]))
            .with_for_update(skip_locked=True)
        )
    )
    return [r for r in dead if r.id in free]


def _parts(ids: list[int], size: int = 500) -> list[list[int]]:
    """``ids`` in parts small enough for one statement's parameters (SQLite's limit)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]
