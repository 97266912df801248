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

On PostgreSQL this maintenance takes a transaction-level advisory lock, so two
workers never do it at once (the second skips it); on SQLite ``BEGIN IMMEDIATE``
already serialises writers.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    if conn.dialect.name == "postgresql" and not conn.scalar(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": MAINTENANCE_LOCK}
    ):
        return ExpiredLeases()  # another worker is doing it right now
    ids = [r.id for r in dead]
    # Picked through the (status, due_at) index: few rows are ever claimed or sending.
    returned = conn.execute(
        update(_D)
        .where(_D.c.status == "claimed", _D.c.worker_id.in_(ids))
        .values(status="scheduled", worker_id=None)
    ).rowcount
    ambiguous = 0
    for row in dead:
        ambiguous += conn.execute(
            update(_D)
            .where(_D.c.status == "sending", _D.c.worker_id == row.id)
            .values(
                status="ambiguous",
                last_error=(
                    f"worker {row.id} ({row.host} pid {row.pid}) stopped while sending: "
                    "the relay may have accepted it"
                ),
            )
        ).rowcount
    conn.execute(delete(_W).where(_W.c.id.in_(ids)))
    for row in dead:
        log.warning(
            "worker %s (%s pid %s) is gone: its unsent claims were handed back",
            row.id,
            row.host,
            row.pid,
        )
    return ExpiredLeases(len(dead), returned, ambiguous)
