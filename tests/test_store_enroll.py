"""Enrolling one or many subscribers: identity, attributes, idempotence, consent."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from dripline.store import (
    Delivery,
    InvalidSubscriberError,
    NewSubscriber,
    SqlDeliveryQueue,
    Subscriber,
    enroll_many,
    normalize_email,
    subscribe,
    subscriber_timeline,
    unsubscribe,
)
from dripline.timetable import Timetable

SLUG = "ketamine-therapy"
AT = datetime(2026, 3, 5, 20, 0, tzinfo=ZoneInfo("America/Los_Angeles"))


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model))


def test_addresses_are_validated_and_idna_domains_stored_in_punycode():
    assert normalize_email(" Ada@Example.COM ") == "Ada@example.com"
    assert normalize_email("Ada@Example.COM").key == "ada@example.com"
    assert normalize_email("joerg@bücher.de") == "joerg@xn--bcher-kva.de"
    for bad in ("plain", "a@b", "a@@example.com", "a@example.com\r\nBcc: x@y.z", ""):
        with pytest.raises(InvalidSubscriberError):
            normalize_email(bad)
    # A non-ASCII local part needs SMTPUTF8 end to end: refused now, with the reason,
    # rather than accepted and failed at every step.
    with pytest.raises(InvalidSubscriberError, match=r"not ASCII.*SMTPUTF8"):
        normalize_email("zoë@example.com")


def test_bulk_enroll_keeps_attributes_for_templates_and_is_idempotent(engine, timetable):
    people = [
        NewSubscriber(
            email=normalize_email(f"p{n}@example.com"),
            name=f"Pat Number{n}",
            timezone="Europe/London",
            subscribed_at=AT,
            attributes={"plan": "gold", "city": "Zürich"},
        )
        for n in range(12)
    ]
    first = enroll_many(engine, timetable, SLUG, people, chunk_size=5)
    assert (first.subscribers_created, first.enrolled, first.deliveries_created) == (12, 12, 72)
    second = enroll_many(engine, timetable, SLUG, people, chunk_size=5)
    assert (second.enrolled, second.already_enrolled) == (0, 12)
    assert count(engine, Delivery) == 72 and count(engine, Subscriber) == 12
    claimed = SqlDeliveryQueue(engine, lambda slug: timetable).claim_due(AT, 100)
    assert len(claimed) == 12
    assert claimed[0].attributes == {"plan": "gold", "city": "Zürich"}
    assert claimed[0].first_name == "Pat" and claimed[0].timezone == "Europe/London"


def test_import_never_resubscribes_but_an_explicit_subscribe_does(engine, timetable):
    person = NewSubscriber(email=normalize_email("ada@example.com"), subscribed_at=AT)
    subscribe(engine, timetable, SLUG, person)
    unsubscribe(engine, "ada@example.com")
    other = Timetable(timetable.schedule, timetable.steps)
    result = enroll_many(engine, other, "other-campaign", [person])
    assert (result.enrolled, result.inactive_skipped) == (0, 1)
    created, _due = subscribe(engine, timetable, SLUG, person)
    assert created is False  # the enrollment exists; its cancelled steps stay cancelled
    with engine.connect() as conn:
        assert conn.scalar(select(Subscriber.status)) == "active"
    assert [e.status for e in subscriber_timeline(engine, SLUG, "ada@example.com")] == [
        "cancelled"
    ] * 6


def test_bounced_address_is_refused(engine, timetable):
    person = NewSubscriber(email=normalize_email("gone@example.com"), subscribed_at=AT)
    subscribe(engine, timetable, SLUG, person)
    with engine.begin() as conn:
        conn.execute(Subscriber.__table__.update().values(status="bounced"))
    with pytest.raises(InvalidSubscriberError, match="bounced"):
        subscribe(engine, timetable, SLUG, person)


def test_due_times_are_stored_in_utc(engine, timetable):
    person = NewSubscriber(
        email=normalize_email("ada@example.com"), timezone="America/Los_Angeles", subscribed_at=AT
    )
    subscribe(engine, timetable, SLUG, person)
    entries = subscriber_timeline(engine, SLUG, "ada@example.com")
    assert entries[1].due_at == datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
