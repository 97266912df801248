"""Goal events: recorded for a subscriber, they end the campaigns whose goal they are.

An event names a subscriber (by address) and what happened (``booked-consult``). For
every campaign whose ``[goal] event`` it is and in which the subscriber is enrolled and
not yet converted, the enrollment becomes ``converted`` (its ``converted_at`` the
event's time) and every delivery still scheduled or claimed (not yet handed to the
sender) is cancelled, in the same transaction as the event itself, so a dispatcher
claiming at that moment sees all of it or none. An enrollment that began after the
event's time is not converted by it (its sequence goes on). An ``external_id`` seen
before for the same subscriber and event name records nothing: replays are harmless
(the same id for another person is another event); the same id for another event name
of that subscriber is a conflict (:class:`EventIdConflictError`), never dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import DriplineError
from ._engine import write_transaction
from ._models import Delivery, Enrollment, Subscriber
from ._reports import NotSubscribedError
from ._results_models import GoalEvent
from ._values import from_db_time, normalize_email, to_db_time

__all__ = ["EventBeforeEnrollmentError", "EventIdConflictError", "RecordedEvent", "record_event"]

_D = Delivery.__table__
_E = Enrollment.__table__
_S = Subscriber.__table__
_V = GoalEvent.__table__


class EventBeforeEnrollmentError(DriplineError):
    """The event's time is before the subscriber's first enrollment (nothing recorded)."""

    def __init__(self, email: str, enrolled_at: datetime) -> None:
        super().__init__(f"{email} enrolled at {enrolled_at.isoformat()}, after it")
        self.enrolled_at = enrolled_at


class CampaignUnavailableError(DriplineError):
    """A campaign the subscriber is in does not load, so whether the event is its goal is
    unknown: nothing was recorded (try again once the file is fixed)."""


class EventIdConflictError(DriplineError):
    """The event's id was already used for another event name of the same subscriber."""


@dataclass(frozen=True)
class RecordedEvent:
    """What recording an event did."""

    event_id: int | None  # None for a duplicate
    duplicate: bool = False
    converted: tuple[str, ...] = ()  # campaigns whose goal this was
    cancelled: int = 0  # deliveries cancelled

    def as_json(self) -> dict[str, object]:
        return {
            "event_id": self.event_id,
            "duplicate": self.duplicate,
            "converted": list(self.converted),
            "cancelled": self.cancelled,
        }


def record_event(
    engine: Engine,
    email: str,
    name: str,
    *,
    at: datetime,
    now: datetime,
    goals: Mapping[str, str],
    data: Mapping[str, Any] | None = None,
    external_id: str | None = None,
    source: str = "cli",
    unavailable: Mapping[str, str] | None = None,
) -> RecordedEvent:
    """Record event ``name`` for ``email`` at ``at`` (aware UTC); convert matching goals.

    ``goals`` maps campaign slugs to their goal event names. Raises
    :class:`NotSubscribedError` for an address not in the store and
    :class:`EventBeforeEnrollmentError` for an ``at`` before the subscriber's first
    enrollment (a negative time to conversion); nothing is recorded then.
    ``unavailable`` maps the slugs of campaigns whose files do not load to their error:
    when the subscriber has an unconverted enrollment in one,
    :class:`CampaignUnavailableError` is raised and nothing is recorded (the event may be
    its goal; dropping it would let the sequence go on after a conversion).
    """
    key = normalize_email(email).key
    campaigns = sorted(slug for slug, goal in goals.items() if goal == name)
    try:
        with write_transaction(engine) as conn:
            subscriber_id = conn.scalar(select(_S.c.id).where(_S.c.email_key == key))
            if subscriber_id is None:
                raise NotSubscribedError(f"{email} is not a subscriber")
            first = conn.scalar(
                select(func.min(_E.c.enrolled_at)).where(_E.c.subscriber_id == subscriber_id)
            )
            if first is not None and to_db_time(at) < first:
                raise EventBeforeEnrollmentError(email, from_db_time(first) or at)
            _check_available(conn, subscriber_id, unavailable or {})
            if external_id is not None:
                known = conn.scalar(
                    select(_V.c.name).where(
                        _V.c.subscriber_id == subscriber_id, _V.c.external_id == external_id
                    )
                )
                if known == name:
                    return RecordedEvent(None, duplicate=True)
                if known is not None:
                    raise EventIdConflictError(
                        f"id {external_id!r} is already event {known!r} for {email}: "
                        f"not a replay of {name!r}; give this event its own id"
                    )
            event_id = conn.execute(
                insert(_V)
                .values(
                    subscriber_id=subscriber_id,
                    name=name,
                    occurred_at=to_db_time(at),
                    received_at=to_db_time(now),
                    source=source,
                    external_id=external_id,
                    data=dict(data or {}),
                )
                .returning(_V.c.id)
            ).scalar_one()
            converted: list[str] = []
            cancelled = 0
            if campaigns:
                # A goal already reached, now reported to have happened earlier (webhooks
                # arrive out of order): the conversion took place at the earlier time.
                conn.execute(
                    update(_E)
                    .where(
                        _E.c.subscriber_id == subscriber_id,
                        _E.c.campaign.in_(campaigns),
                        _E.c.converted_at > to_db_time(at),
                        _E.c.enrolled_at <= to_db_time(at),
                    )
                    .values(converted_at=to_db_time(at))
                )
                enrollments = conn.execute(
                    select(_E.c.id, _E.c.campaign, _E.c.status).where(
                        _E.c.subscriber_id == subscriber_id,
                        _E.c.campaign.in_(campaigns),
                        _E.c.converted_at.is_(None),
                        # Enrolled after the event: it cannot be what they converted from.
                        _E.c.enrolled_at <= to_db_time(at),
                    )
                ).all()
                for enrollment in enrollments:
                    converted.append(enrollment.campaign)
                    values: dict[str, Any] = {"converted_at": to_db_time(at)}
                    if enrollment.status in ("active", "completed"):
                        values["status"] = "converted"
                    conn.execute(update(_E).where(_E.c.id == enrollment.id).values(**values))
                    # A row a dispatcher has claimed but not yet handed to the sender is
                    # cancelled too (as for a hard bounce): its owner's move to 'sending'
                    # then finds it gone and skips it. 'sending' rows are in flight: kept.
                    cancelled += conn.execute(
                        update(_D)
                        .where(
                            _D.c.enrollment_id == enrollment.id,
                            _D.c.status.in_(("scheduled", "claimed")),
                        )
                        .values(
                            status="cancelled", worker_id=None, last_error=f"goal reached: {name}"
                        )
                    ).rowcount
    except IntegrityError:  # the same id recorded by a concurrent request
        return RecordedEvent(None, duplicate=True)
    return RecordedEvent(event_id, converted=tuple(converted), cancelled=cancelled)


def _check_available(conn: Any, subscriber_id: int, unavailable: Mapping[str, str]) -> None:
    """Raise CampaignUnavailableError if the subscriber is in a campaign that does not load."""
    if not unavailable:
        return
    stuck = conn.scalars(
        select(_E.c.campaign).where(
            _E.c.subscriber_id == subscriber_id,
            _E.c.campaign.in_(sorted(unavailable)),
            _E.c.converted_at.is_(None),
            _E.c.status.in_(("active", "completed")),
        )
    ).first()
    if stuck is not None:
        raise CampaignUnavailableError(
            f"campaign {stuck!r} does not load, so its goal is unknown; nothing was "
            f"recorded, send the event again once it is fixed: {unavailable[stuck]}"
        )
