"""Reading the store for people: one subscriber's timeline, a campaign's counts, unsubscribe."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine, case, func, or_, select, update

from ..errors import DriplineError
from ._engine import read_transaction, write_transaction
from ._models import DELIVERY_STATUSES, Delivery, Enrollment, Subscriber
from ._values import from_db_time, normalize_email

__all__ = [
    "CampaignStatus",
    "NotSubscribedError",
    "SentMessage",
    "StepStatus",
    "TimelineEntry",
    "campaign_status",
    "enrollment_outcome",
    "subscriber_history",
    "subscriber_timeline",
    "unsubscribe",
]

_D = Delivery.__table__
_E = Enrollment.__table__
_S = Subscriber.__table__
_PENDING = ("scheduled",)
# The keys first, then the states only dripline adds.
_JSON_ORDER = (
    "sent",
    "scheduled",
    "failed",
    "cancelled",
    "claimed",
    "sending",
    "ambiguous",
    "skipped",
)


class NotSubscribedError(DriplineError):
    """The address is not in the store (or not in that campaign)."""


@dataclass(frozen=True)
class TimelineEntry:
    step: int  # position as last applied
    due_at: datetime  # aware UTC
    status: str
    sent_at: datetime | None
    timezone: str | None  # the subscriber's own zone (None: campaign default)
    step_id: str = ""  # the step's identity
    subject: str | None = None  # as sent (the ledger); None when not sent
    public_key: str | None = None  # the subscriber's (picks their A/B variant in advance)


@dataclass(frozen=True)
class SentMessage:
    """One ledger row: a message a subscriber was sent."""

    campaign: str
    step_id: str
    subject: str | None
    sent_at: datetime | None  # aware UTC
    status: str  # "sent", or "ambiguous" (the server may have accepted it)
    message_id: str | None
    body_digest: str | None
    campaign_commit: str | None
    subject_variant: int | None = None  # the A/B subject variant sent (1-based), if any

    def as_json(self) -> dict[str, object]:
        return {
            "campaign": self.campaign,
            "step": self.step_id,
            "subject": self.subject,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "status": self.status,
            "message_id": self.message_id,
            "body_digest": self.body_digest,
            "campaign_commit": self.campaign_commit,
            "subject_variant": self.subject_variant,
        }


def subscriber_history(engine: Engine, email: str) -> list[SentMessage]:
    """Every message ``email`` was sent (or may have been: ambiguous), across campaigns,
    oldest first. Raises :class:`NotSubscribedError` for an unknown address."""
    key = normalize_email(email).key
    with read_transaction(engine) as conn:
        subscriber_id = conn.scalar(select(_S.c.id).where(_S.c.email_key == key))
        if subscriber_id is None:
            raise NotSubscribedError(f"{email} is not a subscriber")
        rows = conn.execute(
            select(
                _E.c.campaign,
                _D.c.step_id,
                _D.c.subject,
                _D.c.sent_at,
                _D.c.status,
                _D.c.message_id,
                _D.c.body_digest,
                _D.c.campaign_commit,
                _D.c.first_attempt_at,
                _D.c.subject_variant,
            )
            .join(_E, _E.c.id == _D.c.enrollment_id)
            .where(_E.c.subscriber_id == subscriber_id)
        ).all()
    found = [
        SentMessage(
            r.campaign,
            r.step_id,
            r.subject,
            from_db_time(r.sent_at or r.first_attempt_at),
            r.status,
            r.message_id,
            r.body_digest,
            r.campaign_commit,
            r.subject_variant,
        )
        for r in rows
        if r.status in ("sent", "ambiguous")
    ]
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda m: (m.sent_at or epoch, m.campaign))


def subscriber_timeline(engine: Engine, campaign: str, email: str) -> list[TimelineEntry]:
    """Each delivery of ``email`` in ``campaign``, in step order."""
    key = normalize_email(email).key
    with read_transaction(engine) as conn:
        rows = conn.execute(
            select(
                _D.c.step,
                _D.c.due_at,
                _D.c.status,
                _D.c.sent_at,
                _S.c.timezone,
                _D.c.step_id,
                _D.c.subject,
                _S.c.public_key,
            )
            .join(_E, _E.c.id == _D.c.enrollment_id)
            .join(_S, _S.c.id == _E.c.subscriber_id)
            .where(_S.c.email_key == key, _E.c.campaign == campaign)
            .order_by(_D.c.step)
        ).all()
    if not rows:
        raise NotSubscribedError(f"{email} is not enrolled in campaign {campaign!r}")
    return [
        TimelineEntry(
            step=r.step,
            due_at=from_db_time(r.due_at),  # type: ignore[arg-type]
            status=r.status,
            sent_at=from_db_time(r.sent_at),
            timezone=r.timezone,
            step_id=r.step_id,
            subject=r.subject,
            public_key=r.public_key,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class StepStatus:
    step: int
    counts: dict[str, int]  # every delivery status -> count


@dataclass
class CampaignStatus:
    enrolled: int = 0
    unsubscribed: int = 0
    bounced: int = 0
    steps: list[StepStatus] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "enrolled": self.enrolled,
            "unsubscribed": self.unsubscribed,
            "bounced": self.bounced,
            "steps": [
                {"step": s.step, **{k: s.counts[k] for k in _JSON_ORDER}} for s in self.steps
            ],
        }


def campaign_status(engine: Engine, campaign: str | None = None) -> CampaignStatus:
    """Counts for one campaign (or all): people, and deliveries per step and status."""
    result = CampaignStatus()
    with read_transaction(engine) as conn:
        people = (
            select(
                func.count(),
                func.sum(
                    case(
                        (or_(_S.c.status == "unsubscribed", _E.c.status == "unsubscribed"), 1),
                        else_=0,
                    )
                ),
                func.sum(case((_S.c.status == "bounced", 1), else_=0)),
            )
            .select_from(_E)
            .join(_S, _S.c.id == _E.c.subscriber_id)
        )
        per_step = (
            select(_D.c.step, _D.c.status, func.count())
            .select_from(_D)
            .join(_E, _E.c.id == _D.c.enrollment_id)
            .group_by(_D.c.step, _D.c.status)
            .order_by(_D.c.step)
        )
        if campaign is not None:
            people = people.where(_E.c.campaign == campaign)
            per_step = per_step.where(_E.c.campaign == campaign)
        enrolled, unsubscribed, bounced = conn.execute(people).one()
        result.enrolled, result.unsubscribed, result.bounced = (
            enrolled or 0,
            unsubscribed or 0,
            bounced or 0,
        )
        counts: dict[int, dict[str, int]] = {}
        for step, status, count in conn.execute(per_step):
            counts.setdefault(step, dict.fromkeys(DELIVERY_STATUSES, 0))[status] = count
    result.steps = [StepStatus(step, counts[step]) for step in sorted(counts)]
    return result


def unsubscribe(engine: Engine, email: str, campaign: str | None = None) -> int:
    """Stop mail to ``email`` (from one campaign, or entirely); returns deliveries cancelled.

    The status change and the cancellation of every pending delivery are one
    transaction, so a dispatcher claiming at the same moment sees either both or neither.
    """
    key = normalize_email(email).key
    with write_transaction(engine) as conn:
        subscriber_id = conn.scalar(select(_S.c.id).where(_S.c.email_key == key))
        if subscriber_id is None:
            raise NotSubscribedError(f"{email} is not a subscriber")
        enrollments = select(_E.c.id).where(_E.c.subscriber_id == subscriber_id)
        if campaign is not None:
            enrollments = enrollments.where(_E.c.campaign == campaign)
        enrollment_ids = list(conn.scalars(enrollments))
        if campaign is not None and not enrollment_ids:
            raise NotSubscribedError(f"{email} is not enrolled in campaign {campaign!r}")
        if campaign is None:
            conn.execute(update(_S).where(_S.c.id == subscriber_id).values(status="unsubscribed"))
        # A finished sequence is unsubscribed too: the choice is stored, counted, and kept
        # if the person is enrolled again (a re-import or subscribe does not reopen it).
        conn.execute(
            update(_E)
            .where(
                _E.c.id.in_(enrollment_ids),
                _E.c.status.in_(("active", "completed", "converted")),
            )
            .values(status="unsubscribed")
        )
        # Rows are picked by enrollment (its unique index), then updated by id with a
        # status guard; a status condition next to enrollment_id would lead SQLite onto
        # the (status, due_at) index and a walk over every scheduled row.
        pending = [
            row.id
            for row in conn.execute(
                select(_D.c.id, _D.c.status).where(_D.c.enrollment_id.in_(enrollment_ids))
            )
            if row.status in _PENDING
        ]
        if not pending:
            return 0
        cancelled = conn.execute(
            update(_D)
            .where(_D.c.id.in_(pending), _D.c.status.in_(_PENDING))
            .values(status="cancelled", last_error="unsubscribed")
        )
        return cancelled.rowcount


def enrollment_outcome(engine: Engine, campaign: str, email: str) -> tuple[str, datetime | None]:
    """(enrollment status, converted_at aware UTC or None) of ``email`` in ``campaign``.

    Raises :class:`NotSubscribedError` when they are not enrolled in it.
    """
    key = normalize_email(email).key
    with read_transaction(engine) as conn:
        row = conn.execute(
            select(_E.c.status, _E.c.converted_at)
            .join(_S, _S.c.id == _E.c.subscriber_id)
            .where(_S.c.email_key == key, _E.c.campaign == campaign)
        ).first()
    if row is None:
        raise NotSubscribedError(f"{email} is not enrolled in campaign {campaign!r}")
    return row.status, from_db_time(row.converted_at)
