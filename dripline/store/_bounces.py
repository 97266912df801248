"""Acting on bounces and complaints that arrive after the SMTP session.

:func:`record_bounce` matches one report to a delivery (VERP token, else the
returned Message-ID, else the recipient address), writes the event row and applies
its action in one transaction:

- hard bounce: the subscriber is ``bounced``, every pending delivery cancelled (as
  for a 550 during the session) and the address suppressed;
- soft bounce: counted; the ``policy.soft_limit``-th within ``policy.soft_window``
  suppresses the address and cancels what is pending;
- complaint: unsubscribed from every campaign at once and suppressed.

What changed is kept with the event, so :func:`undo_bounce` can reverse exactly that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import DriplineError
from ._bounce_models import COMPLAINT, HARD, SOFT, BounceEvent, Suppression
from ._engine import read_transaction, write_transaction
from ._models import Delivery, Enrollment, Subscriber
from ._suppress import suppress_in
from ._values import from_db_time, normalize_email, to_db_time

__all__ = [
    "BounceNotFoundError",
    "BouncePolicy",
    "BounceRecord",
    "BounceReport",
    "RecordedBounce",
    "get_bounce",
    "list_bounces",
    "record_bounce",
    "undo_bounce",
]

_D = Delivery.__table__
_E = Enrollment.__table__
_S = Subscriber.__table__
_B = BounceEvent.__table__
_P = Suppression.__table__
_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")  # RFC 3463 class.subject.detail


class BounceNotFoundError(DriplineError):
    """No bounce event has that id."""


@dataclass(frozen=True)
class BouncePolicy:
    """How many soft bounces (within how long) suppress an address."""

    soft_limit: int = 3
    soft_window: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class BounceReport:
    """What a bounce source learned: a DSN, an ARF report or a provider's webhook event.

    The delivery is looked up by ``delivery_id`` (from a VERP token), then
    ``message_id`` (the returned Message-ID, angle brackets included), then ``email``.
    """

    kind: str  # HARD, SOFT or COMPLAINT
    source: str  # "mailbox", "ses", "postmark", "sendgrid", "mailgun"
    email: str | None = None
    status_code: str | None = None  # RFC 3463 enhanced status, e.g. "5.1.1"
    diagnostic: str = ""
    external_id: str | None = None  # the report's own id: a second copy is a replay
    delivery_id: int | None = None
    message_id: str | None = None
    raw: str = ""


@dataclass(frozen=True)
class RecordedBounce:
    """What :func:`record_bounce` did: ``action`` is "bounced", "counted", "suppressed",
    "unsubscribed", "duplicate" (seen before: nothing changed) or "unmatched"."""

    action: str
    event_id: int | None = None
    email: str | None = None
    delivery_id: int | None = None
    matched_by: str | None = None


@dataclass(frozen=True)
class BounceRecord:
    """One event row, for ``dripline bounces list/show``."""

    id: int
    received_at: datetime
    kind: str
    status_code: str | None
    diagnostic: str
    email: str
    delivery_id: int | None
    source: str
    matched_by: str
    action: str
    undone_at: datetime | None
    raw: str = field(default="", repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "kind": self.kind,
            "status_code": self.status_code,
            "diagnostic": self.diagnostic,
            "email": self.email,
            "delivery_id": self.delivery_id,
            "source": self.source,
            "matched_by": self.matched_by,
            "action": self.action,
            "undone_at": self.undone_at.isoformat() if self.undone_at else None,
        }


def _bracketed(message_id: str) -> str:
    value = message_id.strip()
    return value if value.startswith("<") else f"<{value}>"


def _match(conn: Connection, report: BounceReport) -> tuple[Any, str] | None:
    """(row with delivery_id, subscriber_id, email, email_key; how it matched) or None."""
    base = (
        select(_D.c.id.label("delivery_id"), _S.c.id.label("subscriber_id"), _S.c.email_key)
        .join(_E, _E.c.id == _D.c.enrollment_id)
        .join(_S, _S.c.id == _E.c.subscriber_id)
    )
    if report.delivery_id is not None:
        row = conn.execute(base.where(_D.c.id == report.delivery_id)).first()
        if row is not None:
            return row, "token"
    if report.message_id:
        row = conn.execute(
            base.where(_D.c.message_id == _bracketed(report.message_id)).limit(1)
        ).first()
        if row is not None:
            return row, "message-id"
    if report.email:
        try:
            key = normalize_email(report.email).key
        except DriplineError:
            return None
        # The subscriber's most recent sent delivery is the one that bounced, as far as
        # an address can tell; a subscriber with none sent has no mail of ours to bounce.
        row = conn.execute(
            base.where(_S.c.email_key == key, _D.c.status == "sent")
            .order_by(_D.c.sent_at.desc(), _D.c.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            return row, "address"
    return None


def _cancel_pending(conn: Connection, subscriber_id: int, why: str) -> list[int]:
    enrollment_ids = list(conn.scalars(select(_E.c.id).where(_E.c.subscriber_id == subscriber_id)))
    pending = [
        r.id
        for r in conn.execute(
            select(_D.c.id, _D.c.status).where(_D.c.enrollment_id.in_(enrollment_ids))
        )
        if r.status == "scheduled"
    ]
    if pending:
        conn.execute(
            update(_D)
            .where(_D.c.id.in_(pending), _D.c.status == "scheduled")
            .values(status="cancelled", last_error=why)
        )
    return pending


def _apply(
    conn: Connection,
    kind: str,
    subscriber_id: int,
    email: str,
    reason: str,
    event_id: int,
    soft_count: int,
    policy: BouncePolicy,
    now: datetime,
) -> tuple[str, dict[str, Any]]:
    previous = conn.scalar(select(_S.c.status).where(_S.c.id == subscriber_id))
    changes: dict[str, Any] = {"subscriber_status": previous}
    if kind == SOFT and soft_count < policy.soft_limit:
        return "counted", {}
    if kind == HARD:
        conn.execute(update(_S).where(_S.c.id == subscriber_id).values(status="bounced"))
        action, why = "bounced", "address bounced"
    elif kind == COMPLAINT:
        conn.execute(update(_S).where(_S.c.id == subscriber_id).values(status="unsubscribed"))
        enrollments = list(
            conn.scalars(
                select(_E.c.id).where(_E.c.subscriber_id == subscriber_id, _E.c.status == "active")
            )
        )
        if enrollments:
            conn.execute(update(_E).where(_E.c.id.in_(enrollments)).values(status="unsubscribed"))
        changes["enrollments"] = enrollments
        action, why = "unsubscribed", "complaint"
    else:
        action, why = "suppressed", f"{soft_count} soft bounces"
    changes["cancelled"] = _cancel_pending(conn, subscriber_id, why)
    changes["suppressed"] = suppress_in(
        conn, email, reason, source="bounce", now=now, event_id=event_id
    )
    return action, changes


def record_bounce(
    engine: Engine,
    report: BounceReport,
    *,
    now: datetime,
    policy: BouncePolicy | None = None,
    dry_run: bool = False,
) -> RecordedBounce:
    """Match ``report`` to a delivery and act on it, in one transaction (see the module).

    A report whose ``(source, external_id)`` was recorded before changes nothing
    ("duplicate"); one that matches no delivery or subscriber changes nothing
    ("unmatched"). ``dry_run`` matches and decides but rolls everything back.
    """
    policy = policy or BouncePolicy()
    if report.kind not in (HARD, SOFT, COMPLAINT):
        raise ValueError(f"unknown bounce kind {report.kind!r}")
    report = _without_nul(report)
    try:
        with write_transaction(engine) as conn:
            outcome = _record(conn, report, now, policy)
            if dry_run:
                conn.rollback()
            return outcome
    except IntegrityError:
        # A concurrent copy of the same report won the insert: this one is the replay.
        return RecordedBounce("duplicate")


def _without_nul(report: BounceReport) -> BounceReport:
    """The report made storable whatever a hostile DSN or webhook put in it: NUL characters
    become U+FFFD (PostgreSQL text cannot hold them, not even as a query parameter), and a
    status that is no RFC 3463 code (``5.1.1``) is dropped rather than overflowing its
    column, which PostgreSQL refuses; the diagnostic text keeps what the report said."""
    changed: dict[str, Any] = {
        f.name: value.replace("\x00", "\ufffd")
        for f in fields(report)
        if isinstance(value := getattr(report, f.name), str) and "\x00" in value
    }
    status = changed.get("status_code", report.status_code)
    if status is not None and not _STATUS.fullmatch(status):
        changed["status_code"] = None
    return replace(report, **changed) if changed else report


def _record(
    conn: Connection, report: BounceReport, now: datetime, policy: BouncePolicy
) -> RecordedBounce:
    if report.external_id is not None:
        seen = conn.scalar(
            select(_B.c.id).where(
                _B.c.source == report.source, _B.c.external_id == report.external_id
            )
        )
        if seen is not None:
            return RecordedBounce("duplicate", event_id=seen)
    matched = _match(conn, report)
    if matched is None:
        return RecordedBounce("unmatched", email=report.email)
    row, matched_by = matched
    email = conn.scalar(select(_S.c.email).where(_S.c.id == row.subscriber_id))
    soft_count = 0
    if report.kind == SOFT:
        earlier = conn.scalar(
            select(func.count())
            .select_from(_B)
            .where(
                _B.c.email_key == row.email_key,
                _B.c.kind == SOFT,
                _B.c.undone_at.is_(None),
                _B.c.received_at > to_db_time(now - policy.soft_window),
            )
        )
        soft_count = (earlier or 0) + 1
    event_id = conn.execute(
        insert(_B).values(
            received_at=to_db_time(now),
            kind=report.kind,
            status_code=report.status_code,
            diagnostic=report.diagnostic[:2000],
            delivery_id=row.delivery_id,
            subscriber_id=row.subscriber_id,
            email_key=row.email_key,
            source=report.source[:100],
            external_id=report.external_id[:200] if report.external_id else None,
            matched_by=matched_by,
            action="pending",
            changes={},
            raw=report.raw,
        )
    ).inserted_primary_key[0]
    code = f" {report.status_code}" if report.status_code else ""
    reason = f"{report.kind}{code} via {report.source} (event {event_id})"
    action, changes = _apply(
        conn,
        report.kind,
        row.subscriber_id,
        email,
        reason,
        event_id,
        soft_count,
        policy,
        now,
    )
    conn.execute(update(_B).where(_B.c.id == event_id).values(action=action, changes=changes))
    return RecordedBounce(action, event_id, email, row.delivery_id, matched_by)


def _record_of(row: Any, email: str) -> BounceRecord:
    return BounceRecord(
        id=row.id,
        received_at=from_db_time(row.received_at),  # type: ignore[arg-type]
        kind=row.kind,
        status_code=row.status_code,
        diagnostic=row.diagnostic,
        email=email,
        delivery_id=row.delivery_id,
        source=row.source,
        matched_by=row.matched_by,
        action=row.action,
        undone_at=from_db_time(row.undone_at),
        raw=row.raw,
    )


def list_bounces(engine: Engine, *, since: datetime | None = None) -> list[BounceRecord]:
    """Every event (newest last), or those received at or after ``since`` (aware UTC)."""
    query = (
        select(_B, func.coalesce(_S.c.email, _B.c.email_key).label("address"))
        .outerjoin(_S, _S.c.id == _B.c.subscriber_id)
        .order_by(_B.c.received_at, _B.c.id)
    )
    if since is not None:
        query = query.where(_B.c.received_at >= to_db_time(since))
    with read_transaction(engine) as conn:
        return [_record_of(r, r.address) for r in conn.execute(query)]


def get_bounce(engine: Engine, event_id: int) -> BounceRecord:
    """One event with its raw report; raises :class:`BounceNotFoundError`."""
    query = (
        select(_B, func.coalesce(_S.c.email, _B.c.email_key).label("address"))
        .outerjoin(_S, _S.c.id == _B.c.subscriber_id)
        .where(_B.c.id == event_id)
    )
    with read_transaction(engine) as conn:
        row = conn.execute(query).first()
    if row is None:
        raise BounceNotFoundError(f"no bounce event {event_id} (see dripline bounces list)")
    return _record_of(row, row.address)


def undo_bounce(engine: Engine, event_id: int, *, now: datetime) -> dict[str, int]:
    """Reverse what event ``event_id`` changed, in one transaction.

    The subscriber gets back the status they had (unless something else changed it
    since), the enrollments it unsubscribed and the deliveries it cancelled are active
    and scheduled again (a past due time is sent on the next pass), and the suppression
    it added is removed. Returns counts of what was restored. Raises
    :class:`BounceNotFoundError`, or :class:`DriplineError` when it was undone already.
    """
    with write_transaction(engine) as conn:
        event = conn.execute(select(_B).where(_B.c.id == event_id)).first()
        if event is None:
            raise BounceNotFoundError(f"no bounce event {event_id} (see dripline bounces list)")
        if event.undone_at is not None:
            raise DriplineError(f"bounce event {event_id} was undone already")
        changes = event.changes or {}
        set_to = {"bounced": "bounced", "unsubscribed": "unsubscribed"}.get(event.action)
        restored = {"subscriber": 0, "enrollments": 0, "deliveries": 0, "suppression": 0}
        if set_to and event.subscriber_id is not None and changes.get("subscriber_status"):
            restored["subscriber"] = conn.execute(
                update(_S)
                .where(_S.c.id == event.subscriber_id, _S.c.status == set_to)
                .values(status=changes["subscriber_status"])
            ).rowcount
        if changes.get("enrollments"):
            restored["enrollments"] = conn.execute(
                update(_E)
                .where(_E.c.id.in_(changes["enrollments"]), _E.c.status == "unsubscribed")
                .values(status="active")
            ).rowcount
        if changes.get("cancelled"):
            restored["deliveries"] = conn.execute(
                update(_D)
                .where(_D.c.id.in_(changes["cancelled"]), _D.c.status == "cancelled")
                .values(status="scheduled", last_error=None)
            ).rowcount
        if changes.get("suppressed"):
            restored["suppression"] = conn.execute(
                delete(_P).where(_P.c.event_id == event_id)
            ).rowcount
        conn.execute(update(_B).where(_B.c.id == event_id).values(undone_at=to_db_time(now)))
        return restored
