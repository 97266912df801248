"""The dispatcher's view of the store: claim due deliveries, record each outcome.

Every call is one transaction. A claim moves rows from ``scheduled`` to
``sending``; only a row in ``sending`` can be marked sent, failed, deferred or
ambiguous, so a delivery can never be recorded (or sent) twice. A row left in
``sending`` by a crash stays there: it is reported by ``dripline status`` and not
re-sent (at most once per subscriber and step).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, and_, bindparam, func, select, update

from ..errors import DriplineError
from ..timetable import Timetable
from ._engine import write_transaction
from ._models import Delivery, Enrollment, Subscriber, new_public_key
from ._values import from_db_time, to_db_time

__all__ = [
    "ClaimedDelivery",
    "DeliveryQueue",
    "DeliveryStateError",
    "SqlDeliveryQueue",
]

_D = Delivery.__table__
_E = Enrollment.__table__
_S = Subscriber.__table__


class DeliveryStateError(DriplineError):
    """An outcome was recorded for a delivery that is not being sent."""


@dataclass(frozen=True)
class ClaimedDelivery:
    """Everything rendering and sending one email needs."""

    delivery_id: int
    enrollment_id: int
    campaign: str
    step: int
    due_at: datetime  # aware UTC
    attempt: int  # 1 for the first try
    email: str
    name: str
    first_name: str
    timezone: str | None
    attributes: Mapping[str, Any]
    # The subscriber's random key, for the unsubscribe link (dripline.serve.unsubscribe_url_for).
    public_key: str = ""


class DeliveryQueue(Protocol):
    """What the dispatcher needs from a store; each method is its own transaction."""

    def claim_due(self, now: datetime, limit: int) -> list[ClaimedDelivery]: ...

    def mark_sent(
        self, delivery_id: int, *, message_id: str, sent_at: datetime, reply: str | None = None
    ) -> None: ...

    def mark_failed(self, delivery_id: int, error: str) -> None: ...

    def mark_deferred(self, delivery_id: int, next_at: datetime, error: str) -> None: ...

    def mark_ambiguous(self, delivery_id: int, error: str) -> None: ...


_CANDIDATES = (
    select(
        _D.c.id,
        _D.c.enrollment_id,
        _D.c.step,
        _D.c.due_at,
        _D.c.attempts,
        _E.c.campaign,
        _E.c.status.label("enrollment_status"),
        _S.c.status.label("subscriber_status"),
        _S.c.email,
        _S.c.name,
        _S.c.first_name,
        _S.c.timezone,
        _S.c.attributes,
        _S.c.id.label("subscriber_id"),
        _S.c.public_key,
    )
    .join(_E, _E.c.id == _D.c.enrollment_id)
    .join(_S, _S.c.id == _E.c.subscriber_id)
    .where(_D.c.status == "scheduled", _D.c.due_at <= bindparam("now"))
    .order_by(_D.c.due_at, _D.c.id)
    .limit(bindparam("limit"))
)


def _ensure_public_keys(conn: Connection, rows: list[Any]) -> dict[int, str]:
    """Each claimed subscriber's public key, giving one to rows inserted without it."""
    keys = {r.subscriber_id: r.public_key for r in rows}
    missing = [{"row_id": i, "new_key": new_public_key()} for i, k in keys.items() if not k]
    if missing:
        conn.execute(
            update(_S)
            .where(_S.c.id == bindparam("row_id"), _S.c.public_key.is_(None))
            .values(public_key=bindparam("new_key")),
            missing,
        )
        ids = [m["row_id"] for m in missing]
        keys.update(conn.execute(select(_S.c.id, _S.c.public_key).where(_S.c.id.in_(ids))).all())
    return keys


class SqlDeliveryQueue:
    """:class:`DeliveryQueue` over SQLAlchemy (SQLite or PostgreSQL).

    ``timetable_for`` gives a campaign's timetable by slug; the claim needs it to
    re-time the steps after an outage.
    """

    def __init__(self, engine: Engine, timetable_for: Callable[[str], Timetable]):
        self.engine = engine
        self.timetable_for = timetable_for
        query = _CANDIDATES
        if engine.dialect.name == "postgresql":
            # Locking the enrollment too keeps two workers from each taking a different
            # overdue step of one subscriber.
            query = query.with_for_update(skip_locked=True, of=[_D, _E])
        self._candidates = query

    def claim_due(self, now: datetime, limit: int) -> list[ClaimedDelivery]:
        """Claim up to ``limit`` due deliveries, oldest first.

        In the same transaction: deliveries of unsubscribed or bounced subscribers are
        cancelled instead of claimed; of several overdue steps of one subscriber only the
        earliest is claimed and the later steps are re-timed onto later local days.
        """
        now_db = to_db_time(now)
        with write_transaction(self.engine) as conn:
            rows = conn.execute(self._candidates, {"now": now_db, "limit": limit}).all()
            cancel: list[int] = []
            first_of: dict[int, Any] = {}
            for row in rows:
                if row.subscriber_status != "active" or row.enrollment_status != "active":
                    cancel.append(row.id)
                elif (
                    row.enrollment_id not in first_of or row.step < first_of[row.enrollment_id].step
                ):
                    first_of[row.enrollment_id] = row
            if cancel:
                conn.execute(
                    update(_D)
                    .where(_D.c.id.in_(cancel), _D.c.status == "scheduled")
                    .values(status="cancelled", last_error="subscriber is no longer active")
                )
            claimed = list(first_of.values())
            if not claimed:
                return []
            self._retime_later_steps(conn, claimed, now)
            keys = _ensure_public_keys(conn, claimed)
            conn.execute(
                update(_D)
                .where(_D.c.id.in_([r.id for r in claimed]))
                .values(
                    status="sending",
                    attempts=_D.c.attempts + 1,
                    first_attempt_at=func.coalesce(_D.c.first_attempt_at, now_db),
                )
            )
        return [
            ClaimedDelivery(
                delivery_id=r.id,
                enrollment_id=r.enrollment_id,
                campaign=r.campaign,
                step=r.step,
                due_at=from_db_time(r.due_at) or now,
                attempt=r.attempts + 1,
                email=r.email,
                name=r.name,
                first_name=r.first_name,
                timezone=r.timezone,
                attributes=r.attributes or {},
                public_key=keys[r.subscriber_id],
            )
            for r in sorted(claimed, key=lambda r: (r.due_at, r.id))
        ]

    def _retime_later_steps(self, conn: Connection, claimed: list[Any], now: datetime) -> None:
        """Move later steps that would land on the send's local day (or before) to later days."""
        by_enrollment = {r.enrollment_id: r for r in claimed}
        later = conn.execute(
            select(_D.c.id, _D.c.enrollment_id, _D.c.step, _D.c.due_at)
            .where(_D.c.enrollment_id.in_(list(by_enrollment)), _D.c.status == "scheduled")
            .order_by(_D.c.enrollment_id, _D.c.step)
        ).all()
        moves: list[dict[str, Any]] = []
        pending: dict[int, list[Any]] = {}
        for row in later:
            if row.step > by_enrollment[row.enrollment_id].step:
                pending.setdefault(row.enrollment_id, []).append(row)
        for enrollment_id, steps in pending.items():
            sent = by_enrollment[enrollment_id]
            table = self.timetable_for(sent.campaign)
            zone = table.zone_for(sent.timezone)
            send_day = now.astimezone(zone).date()
            next_day = (from_db_time(steps[0].due_at) or now).astimezone(zone).date()
            if next_day > send_day:
                continue  # the spacing is intact: nothing to move
            new_times = table.retime_remaining(sent.step, now, sent.timezone)
            moves += [
                {"row_id": s.id, "new_due": to_db_time(new_times[s.step])}
                for s in steps
                if s.step in new_times
            ]
        if moves:
            conn.execute(
                update(_D)
                .where(_D.c.id == bindparam("row_id"))
                .values(due_at=bindparam("new_due"))
                .execution_options(synchronize_session=False),
                moves,
            )

    def _finish(self, delivery_id: int, **values: Any) -> None:
        with write_transaction(self.engine) as conn:
            done = conn.execute(
                update(_D)
                .where(and_(_D.c.id == delivery_id, _D.c.status == "sending"))
                .values(**values)
            )
            if done.rowcount != 1:
                status = conn.scalar(select(_D.c.status).where(_D.c.id == delivery_id))
                raise DeliveryStateError(
                    f"delivery {delivery_id} is not being sent (status: {status or 'missing'})"
                )
            if values.get("status") == "sent":
                self._complete_enrollment_if_done(conn, delivery_id)

    @staticmethod
    def _complete_enrollment_if_done(conn: Connection, delivery_id: int) -> None:
        enrollment_id = conn.scalar(select(_D.c.enrollment_id).where(_D.c.id == delivery_id))
        open_rows = conn.scalar(
            select(_D.c.id)
            .where(_D.c.enrollment_id == enrollment_id, _D.c.status.in_(["scheduled", "sending"]))
            .limit(1)
        )
        if open_rows is None:
            conn.execute(
                update(_E)
                .where(_E.c.id == enrollment_id, _E.c.status == "active")
                .values(status="completed")
            )

    def mark_sent(
        self, delivery_id: int, *, message_id: str, sent_at: datetime, reply: str | None = None
    ) -> None:
        self._finish(
            delivery_id,
            status="sent",
            message_id=message_id,
            sent_at=to_db_time(sent_at),
            reply=reply,
            last_error=None,
        )

    def mark_failed(self, delivery_id: int, error: str) -> None:
        self._finish(delivery_id, status="failed", last_error=error)

    def mark_deferred(self, delivery_id: int, next_at: datetime, error: str) -> None:
        """A temporary failure: back to ``scheduled`` at ``next_at`` (attempts are kept)."""
        self._finish(delivery_id, status="scheduled", due_at=to_db_time(next_at), last_error=error)

    def mark_ambiguous(self, delivery_id: int, error: str) -> None:
        self._finish(delivery_id, status="ambiguous", last_error=error)
