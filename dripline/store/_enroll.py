"""Putting one subscriber into a campaign (bulk enrollment: :mod:`._enroll_bulk`).

Enrolling creates the enrollment and one ``scheduled`` delivery per step, timed by
the :class:`~dripline.timetable.Timetable`, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from ..timetable import Timetable
from ._engine import write_transaction
from ._models import Delivery, Enrollment, Subscriber
from ._suppress import SuppressedError, suppressed_reasons
from ._values import (
    InvalidSubscriberError,
    NormalizedEmail,
    country_of,
    derive_first_name,
    to_db_time,
)

__all__ = ["EnrollResult", "NewSubscriber", "subscribe", "subscriber_row"]

_SUBSCRIBERS = Subscriber.__table__
_ENROLLMENTS = Enrollment.__table__
_DELIVERIES = Delivery.__table__


@dataclass(frozen=True)
class NewSubscriber:
    """A checked subscriber to enroll (see :mod:`dripline.store._values`)."""

    email: NormalizedEmail
    name: str = ""
    first_name: str = ""
    timezone: str | None = None
    subscribed_at: datetime | None = None  # aware; None means "now"
    attributes: dict[str, Any] = field(default_factory=dict)
    # "name" / "first_name" when made from the other name fields rather than given (a CSV
    # with only a first-name column): ``import --update`` never replaces a stored one with it.
    derived: frozenset[str] = frozenset()


@dataclass
class EnrollResult:
    """What an enrollment run changed."""

    subscribers_created: int = 0
    enrolled: int = 0
    already_enrolled: int = 0
    inactive_skipped: int = 0  # unsubscribed or bounced: an import never re-subscribes them
    # (address, why) for each person refused because the address is on the suppression list
    suppressed: list[tuple[str, str]] = field(default_factory=list)
    deliveries_created: int = 0
    # Subscribers already in the store: with ``update``, those whose details changed; the
    # others (all of them without it) are left as they were.
    subscribers_updated: int = 0
    subscribers_left: int = 0


def subscriber_row(person: NewSubscriber, now: datetime, source: str) -> dict[str, Any]:
    consent = to_db_time(person.subscribed_at or now)
    return {
        "email_key": person.email.key,
        "email": str(person.email),
        "name": person.name,
        "first_name": person.first_name or derive_first_name(person.name),
        "timezone": person.timezone,
        "attributes": person.attributes,
        "status": "active",
        "consent_at": consent,
        "consent_source": source,
        "created_at": to_db_time(now),
    }


def _delivery_rows(
    table: Timetable,
    enrollment_id: int,
    enrolled_at: datetime,
    timezone: str | None,
    country: str | None,
) -> list[dict[str, Any]]:
    due = table.due_times(enrolled_at, timezone, country)
    return [
        {
            "enrollment_id": enrollment_id,
            "step": rule.number,
            "step_id": rule.id,
            "due_at": to_db_time(when),
            "status": "scheduled",
            "attempts": 0,
        }
        for rule, when in zip(table.steps, due, strict=True)
    ]


def subscribe(
    engine: Engine,
    table: Timetable,
    campaign: str,
    person: NewSubscriber,
    *,
    source: str = "cli",
    now: datetime | None = None,
) -> tuple[bool, list[datetime]]:
    """Enroll one person (creating or re-activating them): (newly enrolled?, due times UTC).

    An explicit subscribe is fresh consent, so an unsubscribed address becomes active
    again; a bounced one is refused (the address does not take mail), and so is a
    suppressed one (:class:`~dripline.store.SuppressedError`, saying why).
    """
    now = now or datetime.now(UTC)
    enrolled_at = person.subscribed_at or now
    with write_transaction(engine) as conn:
        suppressed = suppressed_reasons(conn, [person.email.key]).get(person.email.key)
        if suppressed is not None:
            raise SuppressedError(f"{person.email} is {suppressed.describe()}")
        existing = conn.execute(
            select(
                _SUBSCRIBERS.c.id,
                _SUBSCRIBERS.c.status,
                _SUBSCRIBERS.c.timezone,
                _SUBSCRIBERS.c.attributes,
            ).where(_SUBSCRIBERS.c.email_key == person.email.key)
        ).first()
        if existing is None:
            subscriber_id = conn.execute(
                insert(_SUBSCRIBERS).values(**subscriber_row(person, now, source))
            ).inserted_primary_key[0]
        else:
            subscriber_id = existing.id
            if existing.status == "bounced":
                raise InvalidSubscriberError(
                    f"{person.email} bounced before; fix the address instead of re-subscribing"
                )
            changes = {k: v for k, v in subscriber_row(person, now, source).items() if v}
            if person.attributes:  # new values win; the others stay (a form sets only some)
                changes["attributes"] = {**(existing.attributes or {}), **person.attributes}
            changes.pop("created_at")
            conn.execute(
                _SUBSCRIBERS.update().where(_SUBSCRIBERS.c.id == subscriber_id).values(**changes)
            )
        enrolled = conn.execute(
            select(_ENROLLMENTS.c.id, _ENROLLMENTS.c.enrolled_at).where(
                _ENROLLMENTS.c.subscriber_id == subscriber_id,
                _ENROLLMENTS.c.campaign == campaign,
            )
        ).first()
        timezone = person.timezone or (existing.timezone if existing else None)
        country = country_of(person.attributes) or (
            country_of(existing.attributes) if existing else None
        )
        if enrolled is not None:
            # Already in: the timetable stays as it was (nothing is sent twice).
            rows = conn.execute(
                select(_DELIVERIES.c.due_at)
                .where(_DELIVERIES.c.enrollment_id == enrolled.id)
                .order_by(_DELIVERIES.c.step)
            )
            return False, [r.due_at.replace(tzinfo=UTC) for r in rows]
        enrollment_id = conn.execute(
            insert(_ENROLLMENTS).values(
                subscriber_id=subscriber_id,
                campaign=campaign,
                enrolled_at=to_db_time(enrolled_at),
                status="active",
            )
        ).inserted_primary_key[0]
        deliveries = _delivery_rows(table, enrollment_id, enrolled_at, timezone, country)
        conn.execute(insert(_DELIVERIES), deliveries)
        return True, [row["due_at"].replace(tzinfo=UTC) for row in deliveries]
