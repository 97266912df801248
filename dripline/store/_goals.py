"""Goal events: recorded for a subscriber, they end the campaigns whose goal they are.

An event names a subscriber (by address) and what happened (``booked-consult``). For
every campaign whose ``[goal] event`` it is and in which the subscriber is enrolled and
not yet converted, the enrollment becomes ``converted`` (its ``converted_at`` the
event's time) and every delivery still scheduled is cancelled, in the same
transaction as the event itself, so a dispatcher claiming at that moment sees all of
it or none. An ``external_id`` seen before records nothing: replays are harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from ._engine import write_transaction
from ._models import Delivery, Enrollment, Subscriber
from ._reports import NotSubscribedError
from ._results_models import GoalEvent
from ._values import normalize_email, to_db_time

__all__ = ["RecordedEvent", "record_event"]

_D = Delivery.__table__
_E = Enrollment.__table__
_S = Subscriber.__table__
_V = GoalEvent.__table__


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
) -> RecordedEvent:
    """Record event ``name`` for ``email`` at ``at`` (aware UTC); convert matching goals.

    ``goals`` maps campaign slugs to their goal event names. Raises
    :class:`NotSubscribedError` for an address not in the store (nothing recorded).
    """
    key = normalize_email(email).key
    campaigns = sorted(slug for slug, goal in goals.items() if goal == name)
    try:
        with write_transaction(engine) as conn:
            subscriber_id = conn.scalar(select(_S.c.id).where(_S.c.email_key == key))
            if subscriber_id is None:
                raise NotSubscribedError(f"{email} is not a subscriber")
            if external_id is not None and conn.scalar(
                select(_V.c.id).where(_V.c.external_id == external_id)
            ):
                return RecordedEvent(None, duplicate=True)
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
                enrollments = conn.execute(
                    select(_E.c.id, _E.c.campaign, _E.c.status).where(
                        _E.c.subscriber_id == subscriber_id,
                        _E.c.campaign.in_(campaigns),
                        _E.c.converted_at.is_(None),
                    )
                ).all()
                for enrollment in enrollments:
                    converted.append(enrollment.campaign)
                    values: dict[str, Any] = {"converted_at": to_db_time(at)}
                    if enrollment.status in ("active", "completed"):
                        values["status"] = "converted"
                    conn.execute(update(_E).where(_E.c.id == enrollment.id).values(**values))
                    pending = list(
                        conn.scalars(
                            select(_D.c.id).where(
                                _D.c.enrollment_id == enrollment.id, _D.c.status == "scheduled"
                            )
                        )
                    )
                    if pending:
                        cancelled += conn.execute(
                            update(_D)
                            .where(_D.c.id.in_(pending), _D.c.status == "scheduled")
                            .values(status="cancelled", last_error=f"goal reached: {name}")
                        ).rowcount
    except IntegrityError:  # the same id recorded by a concurrent request
        return RecordedEvent(None, duplicate=True)
    return RecordedEvent(event_id, converted=tuple(converted), cancelled=cancelled)
