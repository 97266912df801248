"""Enrolling many subscribers (``dripline import``, the benchmark) in chunks, idempotently.

Each chunk is one transaction: look up who exists, insert the new subscribers,
their enrollments and one delivery per step. Re-running skips what is already
there, so an interrupted import is finished by running it again, and importing
the same file twice changes nothing. Values go to the driver through
:class:`~._bulk.BulkWriter`; due times shared by everyone who enrolled on the same
local day are converted once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import Engine, bindparam, select, text, update

from ..timetable import Timetable
from ._bulk import BulkWriter
from ._engine import write_transaction
from ._enroll import EnrollResult, NewSubscriber, subscriber_row
from ._models import Delivery, Enrollment, Subscriber
from ._suppress import suppressed_reasons
from ._values import country_of, to_db_time

__all__ = ["enroll_many"]

_SUBSCRIBERS = Subscriber.__table__
_ENROLLMENTS = Enrollment.__table__
_DELIVERIES = Delivery.__table__
_SUBSCRIBER_COLUMNS = (
    "email_key",
    "email",
    "name",
    "first_name",
    "timezone",
    "attributes",
    "status",
    "consent_at",
    "consent_source",
    "created_at",
)
_ENROLLMENT_COLUMNS = ("subscriber_id", "campaign", "enrolled_at", "status")
_DELIVERY_COLUMNS = ("enrollment_id", "step", "step_id", "due_at", "status", "attempts")

Plan = tuple[datetime | None, ...]


class _Chunk:
    """One chunk's transaction: the writer, plus the caches that outlive it."""

    def __init__(self, writer: BulkWriter, plans: dict[Plan, tuple[Any, ...]], now: datetime):
        self.writer = writer
        self.plans = plans
        self.now = now
        self.now_value = writer.time(to_db_time(now))

    def enrolled_value(self, person: NewSubscriber) -> Any:
        return self.writer.time(to_db_time(person.subscribed_at or self.now))

    def due_values(
        self, table: Timetable, person: NewSubscriber, at_enrollment: Any
    ) -> tuple[Any, ...]:
        """Each step's due time in database form; each shared plan is converted once."""
        at = person.subscribed_at or self.now
        plan = table.due_plan(at, person.timezone, country_of(person.attributes))
        ready = self.plans.get(plan)
        if ready is None:
            w = self.writer
            ready = self.plans[plan] = tuple(
                None if due is None else w.time(to_db_time(due)) for due in plan
            )
        if None in ready:
            return tuple(at_enrollment if due is None else due for due in ready)
        return ready

    def subscriber_values(self, person: NewSubscriber, source: str) -> tuple[Any, ...]:
        """A row for :data:`_SUBSCRIBER_COLUMNS` (see ``subscriber_row`` for the rules)."""
        row = subscriber_row(person, self.now, source)
        row["attributes"] = self.writer.json(row["attributes"])
        row["consent_at"] = self.enrolled_value(person)
        row["created_at"] = self.now_value
        return tuple(row[c] for c in _SUBSCRIBER_COLUMNS)


def _enroll_chunk(
    chunk: _Chunk,
    table: Timetable,
    campaign: str,
    people: Sequence[NewSubscriber],
    source: str,
    result: EnrollResult,
    refresh: bool = False,
) -> None:
    w = chunk.writer
    suppressed = suppressed_reasons(w.conn, [p.email.key for p in people])
    if suppressed:
        result.suppressed += [
            (str(p.email), suppressed[p.email.key].describe())
            for p in people
            if p.email.key in suppressed
        ]
        people = [p for p in people if p.email.key not in suppressed]
    by_key = "SELECT email_key, id, status FROM subscribers WHERE email_key IN {in}"
    keys = [p.email.key for p in people]
    known = {key: (sid, status) for key, sid, status in w.select_in(by_key, keys)}
    fresh = [p for p in people if p.email.key not in known]
    existing = [p for p in people if p.email.key in known]
    updated = _refresh(w, existing, known) if existing and refresh else 0
    result.subscribers_updated += updated
    result.subscribers_left += len(existing) - updated
    if fresh:
        w.insert(
            _SUBSCRIBERS,
            _SUBSCRIBER_COLUMNS,
            [chunk.subscriber_values(p, source) for p in fresh],
        )
        result.subscribers_created += len(fresh)
        fresh_keys = [p.email.key for p in fresh]
        known.update({key: (sid, status) for key, sid, status in w.select_in(by_key, fresh_keys)})
    enrolled_query = (
        "SELECT subscriber_id, id FROM enrollments WHERE campaign = ? AND subscriber_id IN {in}"
    )
    ids = [known[k][0] for k in keys]
    already = {sid for sid, _ in w.select_in(enrolled_query, ids, campaign)}
    to_enroll: list[NewSubscriber] = []
    for person in people:
        sid, status = known[person.email.key]
        if sid in already:
            result.already_enrolled += 1
        elif status != "active":
            result.inactive_skipped += 1
        else:
            to_enroll.append(person)
    if not to_enroll:
        return
    new_ids = [known[p.email.key][0] for p in to_enroll]
    enrolled_values = [chunk.enrolled_value(p) for p in to_enroll]
    w.insert(
        _ENROLLMENTS,
        _ENROLLMENT_COLUMNS,
        [(sid, campaign, at, "active") for sid, at in zip(new_ids, enrolled_values, strict=True)],
    )
    enrollment_of = dict(w.select_in(enrolled_query, new_ids, campaign))
    numbers = [(rule.number, rule.id) for rule in table.steps]
    deliveries: list[tuple[Any, ...]] = []
    for sid, person, at in zip(new_ids, to_enroll, enrolled_values, strict=True):
        enrollment_id = enrollment_of[sid]
        due = chunk.due_values(table, person, at)
        deliveries += [
            (enrollment_id, number, identity, when, "scheduled", 0)
            for (number, identity), when in zip(numbers, due, strict=True)
        ]
    w.insert(_DELIVERIES, _DELIVERY_COLUMNS, deliveries)
    result.enrolled += len(to_enroll)
    result.deliveries_created += len(deliveries)


def _refresh(w: BulkWriter, people: list[NewSubscriber], known: dict[str, tuple[int, str]]) -> int:
    """``import --update``: existing subscribers take the file's name, first name and
    attributes (merged over theirs; the time zone stays: pending steps were timed in it).
    Returns how many changed."""
    ids = {known[p.email.key][0]: p for p in people}
    rows = w.conn.execute(
        select(
            _SUBSCRIBERS.c.id,
            _SUBSCRIBERS.c.name,
            _SUBSCRIBERS.c.first_name,
            _SUBSCRIBERS.c.attributes,
        )
        .where(_SUBSCRIBERS.c.id.in_(list(ids)))
        .order_by(_SUBSCRIBERS.c.id)  # locked in one order: two imports never deadlock
        .with_for_update()  # a concurrent `subscriber set` waits, and is merged, not lost
    ).all()
    changes = []
    for row in rows:
        person = ids[row.id]
        # Empty cells keep what is stored (a blank column in a spreadsheet export must not
        # wipe a plan, which would skip every `when` step on it for good); a name made from
        # the other name columns never replaces a stored one.
        given = {k: v for k, v in person.attributes.items() if v not in ("", None)}
        attributes = {**(row.attributes or {}), **given}
        name = row.name if "name" in person.derived and row.name else person.name or row.name
        first_name = person.first_name or row.first_name
        if "first_name" in person.derived and row.first_name:
            first_name = row.first_name
        if (name, first_name, attributes) != (row.name, row.first_name, row.attributes or {}):
            changes.append({"row_id": row.id, "n": name, "f": first_name, "a": attributes})
    if changes:
        w.conn.execute(
            update(_SUBSCRIBERS)
            .where(_SUBSCRIBERS.c.id == bindparam("row_id"))
            .values(name=bindparam("n"), first_name=bindparam("f"), attributes=bindparam("a")),
            changes,
        )
    return len(changes)


def _chunks(items: Iterable[NewSubscriber], size: int) -> Iterator[list[NewSubscriber]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


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
    update_existing: bool = False,
) -> EnrollResult:
    """Enroll many people; existing subscribers keep their details (re-import changes nothing)
    unless ``update_existing`` (``import --update``): then their name, first name and
    attributes take the file's values (see :func:`_refresh`).

    ``defer_delivery_index`` drops the (status, due_at) index during the load and
    builds it once at the end: about twice as fast for millions of rows, but claims
    slow down meanwhile, so only bulk loads into a quiet database should use it.
    ``people`` must not repeat an address (the CSV reader drops repeats).
    """
    now = now or datetime.now(UTC)
    result = EnrollResult()
    plans: dict[Plan, tuple[Any, ...]] = {}
    if defer_delivery_index:
        with write_transaction(engine) as conn:
            conn.execute(text("DROP INDEX IF EXISTS ix_deliveries_status_due"))
    try:
        for people_chunk in _chunks(people, chunk_size):
            with write_transaction(engine) as conn:
                chunk = _Chunk(BulkWriter(conn), plans, now)
                _enroll_chunk(chunk, table, campaign, people_chunk, source, result, update_existing)
            if progress is not None:
                progress(len(people_chunk))
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
