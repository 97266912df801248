"""The dispatcher's view of the store: claim due deliveries, record each outcome.

Every call is one transaction. A claim moves rows from ``scheduled`` to
``sending``; only a row in ``sending`` can be marked sent, failed, deferred or
ambiguous, so a delivery can never be recorded (or sent) twice. A row left in
``sending`` by a crash stays there: it is reported by ``dripline status`` and not
re-sent (at most once per subscriber and step).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, and_, bindparam, func, or_, select, update

from ..errors import DriplineError
from ..timetable import Timetable
from ._bounce_models import Suppression
from ._bulk import BulkWriter
from ._engine import read_transaction, write_transaction
from ._fastwrite import FastWriter
from ._models import CampaignRevision, Delivery, Enrollment, Subscriber, new_public_key
from ._values import country_of, from_db_time, to_db_time

__all__ = [
    "ClaimedDelivery",
    "DeliveryQueue",
    "DeliveryStateError",
    "SqlDeliveryQueue",
]

_D = Delivery.__table__
_E = Enrollment.__table__
_S = Subscriber.__table__
_R = CampaignRevision.__table__
_SUPPRESSED = Suppression.__table__


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
    first_attempt_at: datetime | None = None  # when this delivery was first tried (retries)
    # The subscriber's random key, for the unsubscribe link (dripline.serve.unsubscribe_url_for).
    public_key: str = ""
    step_id: str = ""  # the step's identity: what is rendered (``step`` only orders)


class DeliveryQueue(Protocol):
    """What the dispatcher needs from a store; each method is its own transaction."""

    def claim_due(self, now: datetime, limit: int) -> list[ClaimedDelivery]: ...

    def mark_sent(
        self, delivery_id: int, *, message_id: str, sent_at: datetime, reply: str | None = None
    ) -> None: ...

    def mark_failed(self, delivery_id: int, error: str) -> None: ...

    def mark_deferred(self, delivery_id: int, next_at: datetime, error: str) -> None: ...

    def mark_ambiguous(self, delivery_id: int, error: str) -> None: ...

    def mark_bounced(self, delivery_id: int, error: str) -> int: ...

    def release(self, delivery_ids: Sequence[int]) -> None: ...


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
        _D.c.first_attempt_at,
        _S.c.id.label("subscriber_id"),
        _S.c.public_key,
        _SUPPRESSED.c.id.label("suppression_id"),
        _D.c.step_id,
    )
    .join(_E, _E.c.id == _D.c.enrollment_id)
    .join(_S, _S.c.id == _E.c.subscriber_id)
    .outerjoin(_SUPPRESSED, _SUPPRESSED.c.email_key == _S.c.email_key)
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


# An enrollment is complete once none of its deliveries is still to be sent.
_OWN_ENROLLMENT = select(_D.c.enrollment_id).where(_D.c.id == bindparam("delivery_id"))
_STILL_OPEN = (
    select(_D.c.id)
    # or_ rather than in_: an IN list compiles to an expanding parameter, not plain SQL.
    .where(
        _D.c.enrollment_id == _E.c.id,
        or_(_D.c.status == "scheduled", _D.c.status == "sending"),
    )
    .exists()
)
_COMPLETE_ENROLLMENT = (
    update(_E)
    .where(_E.c.id == _OWN_ENROLLMENT.scalar_subquery(), _E.c.status == "active", ~_STILL_OPEN)
    .values(status="completed")
)


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
        self._base_candidates = self._candidates = query
        self._held: frozenset[tuple[str, str]] = frozenset()
        self._finish_statements: dict[tuple[str, ...], Any] = {}
        self._writer = FastWriter(engine)

    def hold(self, steps: Iterable[tuple[str, str]]) -> None:
        """Leave deliveries of these (campaign, step identity) pairs unclaimed from now on.

        A step whose file is gone is held until ``dripline apply`` cancels it (or the file
        comes back); the filter is part of the claim's SQL, so held rows never fill a batch.
        """
        held = frozenset(steps)
        if held == self._held:
            return
        self._held = held
        query = self._base_candidates
        for campaign, step_id in sorted(held):
            query = query.where(~and_(_E.c.campaign == campaign, _D.c.step_id == step_id))
        self._candidates = query

    def scheduled_steps(self) -> dict[str, set[str]]:
        """Each campaign's step identities that still have scheduled deliveries."""
        found: dict[str, set[str]] = {}
        with read_transaction(self.engine) as conn:
            for campaign, step_id in conn.execute(
                select(_E.c.campaign, _D.c.step_id)
                .join(_E, _E.c.id == _D.c.enrollment_id)
                .where(_D.c.status == "scheduled")
                .distinct()
            ):
                found.setdefault(campaign, set()).add(step_id)
        return found

    def schedule_version(self) -> int:
        """Changes whenever ``dripline apply`` records a campaign revision (one tiny query)."""
        with read_transaction(self.engine) as conn:
            return conn.scalar(select(func.max(_R.c.id))) or 0

    def claim_due(self, now: datetime, limit: int) -> list[ClaimedDelivery]:
        """Claim up to ``limit`` due deliveries, oldest first.

        In the same transaction: deliveries of unsubscribed, bounced or suppressed
        subscribers are cancelled instead of claimed; of several overdue steps of one
        subscriber only the earliest is claimed and the later steps are re-timed onto later
        local days.
        """
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)  # naive means UTC throughout the store
        now_db = to_db_time(now)
        with write_transaction(self.engine) as conn:
            rows = conn.execute(self._candidates, {"now": now_db, "limit": limit}).all()
            cancel: list[int] = []
            first_of: dict[int, Any] = {}
            for row in rows:
                if (
                    row.subscriber_status != "active"
                    or row.enrollment_status != "active"
                    or row.suppression_id is not None
                ):
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
            writer = BulkWriter(conn)
            self._retime_later_steps(writer, claimed, now)
            keys = _ensure_public_keys(conn, claimed)
            writer.execute_in(
                "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, "
                "first_attempt_at = COALESCE(first_attempt_at, ?) WHERE id IN {in}",
                [r.id for r in claimed],
                writer.time(now_db),
            )
        return [
            ClaimedDelivery(
                delivery_id=d_id,
                enrollment_id=enrollment_id,
                campaign=campaign,
                step=step,
                due_at=due_at.replace(tzinfo=UTC),
                attempt=attempts + 1,
                email=email,
                name=name,
                first_name=first_name,
                timezone=timezone,
                attributes=attributes or {},
                first_attempt_at=from_db_time(first_attempt_at) or now,
                public_key=keys[subscriber_id],
                step_id=step_id,
            )
            for (
                d_id,
                enrollment_id,
                step,
                due_at,
                attempts,
                campaign,
                _,
                _,
                email,
                name,
                first_name,
                timezone,
                attributes,
                first_attempt_at,
                subscriber_id,
                _,
                _,
                step_id,
            ) in claimed
        ]

    def _retime_later_steps(self, writer: BulkWriter, claimed: list[Any], now: datetime) -> None:
        """Move later steps that would land on the send's local day (or before) to later days."""
        by_enrollment = {r.enrollment_id: r for r in claimed}
        # Only a step due before the end of today (local; at most 25 hours ahead anywhere,
        # DST included) can break the spacing, so first look just at those rows: in normal
        # running that is the claimed rows themselves. The status is filtered in Python:
        # given "status = ..." here SQLite leaves the (enrollment_id, step) index for the
        # (status, due_at) one and walks every scheduled row.
        conn = writer.conn
        horizon = writer.time(to_db_time(now + timedelta(hours=25)))
        near = writer.select_in(
            "SELECT enrollment_id, step, status FROM deliveries "
            "WHERE due_at < ? AND enrollment_id IN {in}",
            list(by_enrollment),
            horizon,
        )
        suspects = {
            enrollment_id
            for enrollment_id, step, status in near
            if status == "scheduled" and step > by_enrollment[enrollment_id].step
        }
        if not suspects:
            return
        pending: dict[int, list[Any]] = {}
        for row in conn.execute(
            select(_D.c.id, _D.c.enrollment_id, _D.c.step, _D.c.due_at, _D.c.status, _D.c.step_id)
            .where(_D.c.enrollment_id.in_(list(suspects)))
            .order_by(_D.c.enrollment_id, _D.c.step)
        ):
            if row.status == "scheduled" and row.step > by_enrollment[row.enrollment_id].step:
                pending.setdefault(row.enrollment_id, []).append(row)
        moves: list[dict[str, Any]] = []
        for enrollment_id, steps in pending.items():
            sent = by_enrollment[enrollment_id]
            table = self.timetable_for(sent.campaign)
            zone = table.zone_for(sent.timezone)
            send_day = now.astimezone(zone).date()
            next_day = (from_db_time(steps[0].due_at) or now).astimezone(zone).date()
            if next_day > send_day:
                continue  # the spacing is intact: nothing to move
            # The campaign files give the spacing; rows are matched to them by identity (a
            # step no file has any more is held, so it is not moved).
            sent_number = table.number_of(sent.step_id)
            if sent_number is None:
                continue
            country = country_of(sent.attributes)
            new_times = table.retime_remaining(sent_number, now, sent.timezone, country)
            for s in steps:
                number = table.number_of(s.step_id)
                if number in new_times:
                    moves.append({"row_id": s.id, "new_due": to_db_time(new_times[number])})
        if moves:
            conn.execute(
                update(_D)
                .where(_D.c.id == bindparam("row_id"))
                .values(due_at=bindparam("new_due"))
                .execution_options(synchronize_session=False),
                moves,
            )

    def _finish(self, delivery_id: int, _complete: bool = False, **values: Any) -> None:
        """Move one delivery out of ``sending``, in its own short transaction.

        This is the dispatcher's hot path (one call per message), so it runs on a kept
        driver connection (:class:`FastWriter`) with statements built once per set of
        columns; the enrollment's completion, when asked for, is one more UPDATE.
        """
        statement = self._finish_statements.get(tuple(values))
        if statement is None:
            statement = (
                update(_D)
                .where(and_(_D.c.id == bindparam("delivery_id"), _D.c.status == "sending"))
                .values({name: bindparam(f"new_{name}") for name in values})
            )
            self._finish_statements[tuple(values)] = statement
        params = {"delivery_id": delivery_id, **{f"new_{n}": v for n, v in values.items()}}
        steps: list[tuple[Any, dict[str, Any]]] = [(statement, params)]
        if _complete:
            steps.append((_COMPLETE_ENROLLMENT, {"delivery_id": delivery_id}))
        if self._writer.run(steps)[0] != 1:
            # Nothing changed (the transaction wrote nothing): say what state the row is in.
            with write_transaction(self.engine) as conn:
                status = conn.scalar(select(_D.c.status).where(_D.c.id == delivery_id))
            raise DeliveryStateError(
                f"delivery {delivery_id} is not being sent (status: {status or 'missing'})"
            )

    def _finish_in(self, conn: Connection, delivery_id: int, values: dict[str, Any]) -> None:
        """Move a ``sending`` delivery to its outcome inside ``conn``'s transaction."""
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

    def mark_sent(
        self,
        delivery_id: int,
        *,
        message_id: str,
        sent_at: datetime,
        reply: str | None = None,
        last_step: bool = True,
        subject: str | None = None,
        body_digest: str | None = None,
        campaign_commit: str | None = None,
    ) -> None:
        """Record an accepted message, with the ledger of what went out: ``subject`` as
        sent, ``body_digest`` (SHA-256 hex of the rendered body) and ``campaign_commit``
        (the project's git commit, ``-dirty`` when the files differ from it).

        ``last_step=False`` (the dispatcher knows) skips checking whether the enrollment
        is now complete: steps go out in order."""
        self._finish(
            delivery_id,
            _complete=last_step,
            status="sent",
            message_id=message_id,
            sent_at=to_db_time(sent_at),
            reply=reply,
            last_error=None,
            subject=subject,
            body_digest=body_digest,
            campaign_commit=campaign_commit,
        )

    def mark_failed(self, delivery_id: int, error: str) -> None:
        self._finish(delivery_id, status="failed", last_error=error)

    def mark_deferred(self, delivery_id: int, next_at: datetime, error: str) -> None:
        """A temporary failure: back to ``scheduled`` at ``next_at`` (attempts are kept)."""
        self._finish(delivery_id, status="scheduled", due_at=to_db_time(next_at), last_error=error)

    def mark_ambiguous(self, delivery_id: int, error: str) -> None:
        self._finish(delivery_id, status="ambiguous", last_error=error)

    def mark_bounced(self, delivery_id: int, error: str) -> int:
        """A dead mailbox: this delivery failed, the subscriber is ``bounced`` and every
        pending delivery of theirs is cancelled, in one transaction. Returns how many."""
        with write_transaction(self.engine) as conn:
            self._finish_in(conn, delivery_id, {"status": "failed", "last_error": error})
            subscriber_id = conn.scalar(
                select(_E.c.subscriber_id)
                .join(_D, _D.c.enrollment_id == _E.c.id)
                .where(_D.c.id == delivery_id)
            )
            conn.execute(update(_S).where(_S.c.id == subscriber_id).values(status="bounced"))
            enrollment_ids = list(
                conn.scalars(select(_E.c.id).where(_E.c.subscriber_id == subscriber_id))
            )
            pending = [
                row.id
                for row in conn.execute(
                    select(_D.c.id, _D.c.status).where(_D.c.enrollment_id.in_(enrollment_ids))
                )
                if row.status == "scheduled"
            ]
            if pending:
                conn.execute(
                    update(_D)
                    .where(_D.c.id.in_(pending), _D.c.status == "scheduled")
                    .values(status="cancelled", last_error="address bounced")
                )
            return len(pending)

    def release(self, delivery_ids: Sequence[int]) -> None:
        """Give claimed deliveries back unsent (shutdown, sender down): ``scheduled`` again
        as they were, and the attempt each was charged is refunded."""
        if not delivery_ids:
            return
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(_D)
                .where(_D.c.id.in_(list(delivery_ids)), _D.c.status == "sending")
                .values(status="scheduled", attempts=_D.c.attempts - 1)
            )

    def close(self) -> None:
        """Give back the connection outcomes are written on."""
        self._writer.close_connection()
