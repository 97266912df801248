"""Putting subscribers into a campaign: one at a time or in bulk, idempotently.

Enrolling creates the enrollment and one ``scheduled`` delivery per step, timed by
the :class:`~dripline.timetable.Timetable`, in the same transaction. Bulk
enrollment works in chunks with Core ``executemany`` inserts; each chunk is its
own transaction, and re-running skips what is already there, so an interrupted
import is finished by running it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text

from ..timetable import Timetable
from ._bulk import bulk_insert
from ._engine import write_transaction
from ._models import Delivery, Enrollment, Subscriber
from ._values import InvalidSubscriberError, NormalizedEmail, derive_first_name, to_db_time

__all__ = ["EnrollResult", "NewSubscriber", "enroll_many", "subscribe"]

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


@dataclass
class EnrollResult:
    """What an enrollment run changed."""

    subscribers_created: int = 0
    enrolled: int = 0
    already_enrolled: int = 0
    inactive_skipped: int = 0  # unsubscribed or bounced: an import never re-subscribes them
    deliveries_created: int = 0


def _subscriber_row(person: NewSubscriber, now: datetime, source: str) -> dict[str, Any]:
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
    table: Timetable, enrollment_id: int, enrolled_at: datetime, timezone: str | None
) -> list[dict[str, Any]]:
    due = table.due_times(enrolled_at, timezone)
    return [
        {
            "enrollment_id": enrollment_id,
            "step": rule.number,
            "due_at": to_db_time(when),
            "status": "scheduled",
            "attempts": 0,
        }
        for rule, when in zip(table.steps, due, strict=True)
    ]


_DELIVERY_COLUMNS = ("enrollment_id", "step", "due_at", "status", "attempts")
NaivePlan = tuple[datetime | None, ...]


def _delivery_tuples(
    table: Timetable,
    enrollment_id: int,
    enrolled_at: datetime,
    timezone: str | None,
    plans: dict[NaivePlan, NaivePlan],
) -> list[tuple[Any, ...]]:
    """Rows for :data:`_DELIVERY_COLUMNS`; ``plans`` converts each shared plan only once."""
    plan = table.due_plan(enrolled_at, timezone)
    naive = plans.get(plan)
    if naive is None:
        naive = plans[plan] = tuple(None if due is None else to_db_time(due) for due in plan)
    at_enrollment = to_db_time(enrolled_at)
    return [
        (enrollment_id, rule.number, at_enrollment if due is None else due, "scheduled", 0)
        for rule, due in zip(table.steps, naive, strict=True)
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
    again; a bounced one is refused (the address does not take mail).
    """
    now = now or datetime.now(UTC)
    enrolled_at = person.subscribed_at or now
    with write_transaction(engine) as conn:
        existing = conn.execute(
            select(_SUBSCRIBERS.c.id, _SUBSCRIBERS.c.status, _SUBSCRIBERS.c.timezone).where(
                _SUBSCRIBERS.c.email_key == person.email.key
            )
        ).first()
        if existing is None:
            subscriber_id = conn.execute(
                insert(_SUBSCRIBERS).values(**_subscriber_row(person, now, source))
            ).inserted_primary_key[0]
        else:
            subscriber_id = existing.id
            if existing.status == "bounced":
                raise InvalidSubscriberError(
                    f"{person.email} bounced before; fix the address instead of re-subscribing"
                )
            changes = {k: v for k, v in _subscriber_row(person, now, source).items() if v}
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
        deliveries = _delivery_rows(table, enrollment_id, enrolled_at, timezone)
        conn.execute(insert(_DELIVERIES), deliveries)
        return True, [row["due_at"].replace(tzinfo=UTC) for row in deliveries]


def _chunks(items: Iterable[NewSubscriber], size: int) -> Iterator[list[NewSubscriber]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _enroll_chunk(
    conn: Connection,
    table: Timetable,
    campaign: str,
    people: Sequence[NewSubscriber],
    now: datetime,
    source: str,
    result: EnrollResult,
    plans: dict[NaivePlan, NaivePlan],
) -> None:
    keys = [p.email.key for p in people]
    known = {
        r.email_key: r
        for r in conn.execute(
            select(_SUBSCRIBERS.c.id, _SUBSCRIBERS.c.email_key, _SUBSCRIBERS.c.status).where(
                _SUBSCRIBERS.c.email_key.in_(keys)
            )
        )
    }
    fresh = [p for p in people if p.email.key not in known]
    if fresh:
        rows = [_subscriber_row(p, now, source) for p in fresh]
        bulk_insert(conn, _SUBSCRIBERS, list(rows[0]), [tuple(r.values()) for r in rows])
        result.subscribers_created += len(fresh)
        for r in conn.execute(
            select(_SUBSCRIBERS.c.id, _SUBSCRIBERS.c.email_key, _SUBSCRIBERS.c.status).where(
                _SUBSCRIBERS.c.email_key.in_([p.email.key for p in fresh])
            )
        ):
            known[r.email_key] = r
    ids = [known[k].id for k in keys]
    enrolled_ids = set(
        conn.scalars(
            select(_ENROLLMENTS.c.subscriber_id).where(
                _ENROLLMENTS.c.campaign == campaign, _ENROLLMENTS.c.subscriber_id.in_(ids)
            )
        )
    )
    to_enroll: list[NewSubscriber] = []
    for person in people:
        row = known[person.email.key]
        if row.id in enrolled_ids:
            result.already_enrolled += 1
        elif row.status != "active":
            result.inactive_skipped += 1
        else:
            to_enroll.append(person)
    if not to_enroll:
        return
    bulk_insert(
        conn,
        _ENROLLMENTS,
        ("subscriber_id", "campaign", "enrolled_at", "status"),
        [
            (known[p.email.key].id, campaign, to_db_time(p.subscribed_at or now), "active")
            for p in to_enroll
        ],
    )
    new_ids = [known[p.email.key].id for p in to_enroll]
    enrollment_of: dict[int, int] = {
        subscriber_id: enrollment_id
        for subscriber_id, enrollment_id in conn.execute(
            select(_ENROLLMENTS.c.subscriber_id, _ENROLLMENTS.c.id).where(
                _ENROLLMENTS.c.campaign == campaign, _ENROLLMENTS.c.subscriber_id.in_(new_ids)
            )
        )
    }
    deliveries: list[tuple[Any, ...]] = []
    for person in to_enroll:
        enrollment_id = enrollment_of[known[person.email.key].id]
        deliveries += _delivery_tuples(
            table, enrollment_id, person.subscribed_at or now, person.timezone, plans
        )
    bulk_insert(conn, _DELIVERIES, _DELIVERY_COLUMNS, deliveries)
    result.enrolled += len(to_enroll)
    result.deliveries_created += len(deliveries)


def enroll_many(
    engine: Engine,
    table: Timetable,
    campaign: str,
    people: Iterable[NewSubscriber],
    *,
    source: str = "import",
    now: datetime | None = None,
    chunk_size: int = 5000,
    defer_delivery_index: bool = False,
    progress: Callable[[int], None] | None = None,
) -> EnrollResult:
    """Enroll many people; existing subscribers keep their details (re-import changes nothing).

    ``defer_delivery_index`` drops the (status, due_at) index during the load and
    builds it once at the end: about twice as fast for millions of rows, but claims
    slow down meanwhile, so only bulk loads into a quiet database should use it.
    ``people`` must not repeat an address (the CSV reader drops repeats).
    """
    now = now or datetime.now(UTC)
    result = EnrollResult()
    plans: dict[NaivePlan, NaivePlan] = {}
    if defer_delivery_index:
        with write_transaction(engine) as conn:
            conn.execute(text("DROP INDEX IF EXISTS ix_deliveries_status_due"))
    try:
        for chunk in _chunks(people, chunk_size):
            with write_transaction(engine) as conn:
                _enroll_chunk(conn, table, campaign, chunk, now, source, result, plans)
            if progress is not None:
                progress(len(chunk))
    finally:
        if defer_delivery_index:
            with write_transaction(engine) as conn:
                conn.execute(
                    text(
                        "CREATE INDEX IF NOT EXISTS ix_deliveries_status_due "
                        "ON deliveries (status, due_at)"
                    )
                )
    return result
