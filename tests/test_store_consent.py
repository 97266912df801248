"""The store side of double opt-in: public keys, pending subscribers, consent records."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from alembic import command
from sqlalchemy import Engine, func, select, text, update

from dripline.store import (
    Consent,
    Delivery,
    NewSubscriber,
    SignupForm,
    SqlDeliveryQueue,
    Subscriber,
    confirm_signup,
    enroll_many,
    forget_unconfirmed,
    make_engine,
    normalize_email,
    open_store,
    read_transaction,
    request_signup,
    subscribe,
    write_transaction,
)
from dripline.store._migrate import _config
from dripline.timetable import Timetable

NOW = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
_S = Subscriber.__table__


def _form(email: str = "ada@example.com") -> SignupForm:
    return SignupForm(
        campaign="ketamine-therapy",
        email=normalize_email(email),
        first_name="Ada",
        timezone="Europe/Paris",
        form="/subscribe/ketamine-therapy",
        consent_text="Yes, send me the emails.",
        ip="192.0.2.7",
        user_agent="UA/1",
    )


def test_upgrading_gives_existing_subscribers_distinct_random_keys(sqlite_url: str):
    engine = make_engine(sqlite_url)
    config = _config()
    with write_transaction(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    with write_transaction(engine) as conn:
        for n in range(3):
            conn.execute(
                text(
                    "INSERT INTO subscribers (email_key, email, name, first_name, attributes, "
                    "status, consent_at, consent_source, created_at) VALUES "
                    f"('p{n}@example.com', 'p{n}@example.com', '', '', '{{}}', 'active', "
                    "'2026-01-01 00:00:00', 'cli', '2026-01-01 00:00:00')"
                )
            )
    with write_transaction(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    with read_transaction(engine) as conn:
        keys = list(conn.scalars(select(_S.c.public_key)))
    assert len(set(keys)) == 3 and all(k and len(k) == 22 for k in keys)
    engine.dispose()


def test_claim_gives_a_key_to_a_subscriber_written_without_one(
    engine: Engine, timetable: Timetable
):
    subscribe(
        engine, timetable, "ketamine-therapy", NewSubscriber(normalize_email("a@example.com"))
    )
    with write_transaction(engine) as conn:
        # As a raw bulk insert leaves it: no Python-side default ran.
        conn.execute(update(_S).values(public_key=None))
    queue = SqlDeliveryQueue(engine, lambda _slug: timetable)
    (claimed,) = queue.claim_due(datetime.now(UTC) + timedelta(minutes=1), 10)
    with read_transaction(engine) as conn:
        stored = conn.scalar(select(_S.c.public_key))
    assert claimed.public_key and claimed.public_key == stored


def test_sign_up_leaves_a_pending_subscriber_with_nothing_to_send(
    engine: Engine, timetable: Timetable
):
    ticket = request_signup(engine, _form(), now=NOW)
    assert ticket.reason == "send" and ticket.request_key
    with read_transaction(engine) as conn:
        assert conn.scalar(select(_S.c.status)) == "pending"
        assert conn.scalar(select(Delivery.__table__.c.id)) is None
    queue = SqlDeliveryQueue(engine, lambda _slug: timetable)
    assert queue.claim_due(NOW + timedelta(days=60), 10) == []


def test_a_pending_subscriber_s_deliveries_are_never_claimed(engine: Engine, timetable: Timetable):
    # Belt and braces: even a delivery that somehow exists for a pending person is not sent.
    subscribe(
        engine, timetable, "ketamine-therapy", NewSubscriber(normalize_email("a@example.com"))
    )
    with write_transaction(engine) as conn:
        conn.execute(update(_S).values(status="pending"))
    queue = SqlDeliveryQueue(engine, lambda _slug: timetable)
    assert queue.claim_due(datetime.now(UTC) + timedelta(days=60), 10) == []


def test_confirm_records_consent_then_enrolls(engine: Engine, timetable: Timetable):
    ticket = request_signup(engine, _form(), now=NOW)
    assert ticket.request_key is not None
    at = NOW + timedelta(hours=2)
    done = confirm_signup(
        engine, timetable, ticket.request_key, ip="198.51.100.4", user_agent="UA/2", now=at
    )
    assert done is not None and done.newly_enrolled and done.next_due == at
    assert done.timezone == "Europe/Paris"
    with read_transaction(engine) as conn:
        (consent,) = conn.execute(select(Consent.__table__)).all()
        subscriber = conn.execute(select(_S)).one()
    assert (consent.ip, consent.user_agent, consent.given_at) == (
        "198.51.100.4",
        "UA/2",
        at.replace(tzinfo=None),
    )
    assert consent.consent_text == "Yes, send me the emails."
    assert subscriber.status == "active" and subscriber.consent_at == at.replace(tzinfo=None)
    assert confirm_signup(engine, timetable, "no-such-key", ip="", user_agent="", now=at) is None


def test_bounced_address_gets_no_confirmation_email(engine: Engine, timetable: Timetable):
    subscribe(
        engine, timetable, "ketamine-therapy", NewSubscriber(normalize_email("b@example.com"))
    )
    with write_transaction(engine) as conn:
        conn.execute(update(_S).values(status="bounced"))
    assert request_signup(engine, _form("b@example.com"), now=NOW).reason == "bounced"


def test_concurrent_sign_ups_of_one_new_address_send_three_emails(db_url: str):
    # Separate engines stand for separate server processes racing on the same address.
    engines = [open_store(db_url) for _ in range(8)]
    start = threading.Barrier(len(engines))

    def attempt(engine: Engine) -> str:
        start.wait()
        return request_signup(engine, _form("race@example.com"), now=NOW).reason

    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            reasons = sorted(pool.map(attempt, engines))
        assert reasons == ["rate-limited"] * 5 + ["send"] * 3
        with read_transaction(engines[0]) as conn:
            assert conn.scalar(select(func.count()).select_from(_S)) == 1
    finally:
        for engine in engines:
            engine.dispose()


def test_concurrent_confirmations_enroll_once(db_url: str, timetable: Timetable):
    engines = [open_store(db_url) for _ in range(4)]
    ticket = request_signup(engines[0], _form(), now=NOW)
    assert ticket.request_key is not None
    key = ticket.request_key
    start = threading.Barrier(len(engines))

    def attempt(engine: Engine) -> bool:
        start.wait()
        done = confirm_signup(engine, timetable, key, ip="192.0.2.1", user_agent="UA", now=NOW)
        return done is not None

    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            assert all(pool.map(attempt, engines))
        with read_transaction(engines[0]) as conn:
            assert conn.scalar(select(func.count()).select_from(Consent.__table__)) == 1
            assert conn.scalar(select(func.count()).select_from(Delivery.__table__)) == 6
    finally:
        for engine in engines:
            engine.dispose()


def test_addresses_that_never_confirmed_are_forgotten_after_a_while(
    engine: Engine, timetable: Timetable
):
    request_signup(engine, _form("never@example.com"), now=NOW)
    confirmed = request_signup(engine, _form("yes@example.com"), now=NOW)
    assert confirmed.request_key is not None
    confirm_signup(engine, timetable, confirmed.request_key, ip="", user_agent="", now=NOW)
    request_signup(engine, _form("recent@example.com"), now=NOW + timedelta(days=29))
    after = timedelta(days=30)
    assert forget_unconfirmed(engine, now=NOW + timedelta(days=29), after=after) == 0
    assert forget_unconfirmed(engine, now=NOW + timedelta(days=31), after=after) == 1
    with read_transaction(engine) as conn:
        left = sorted(conn.scalars(select(_S.c.email_key)))
    assert left == ["recent@example.com", "yes@example.com"]


def test_an_import_does_not_enroll_a_pending_subscriber(engine: Engine, timetable: Timetable):
    request_signup(engine, _form("pending@example.com"), now=NOW)
    people = [NewSubscriber(normalize_email("pending@example.com"))]
    result = enroll_many(engine, timetable, "ketamine-therapy", people, now=NOW)
    assert (result.enrolled, result.inactive_skipped) == (0, 1)
    with read_transaction(engine) as conn:
        assert conn.scalar(select(func.count()).select_from(Delivery.__table__)) == 0


def test_a_country_from_the_sign_up_is_kept_and_its_holidays_skipped(engine: Engine, campaign):
    from dataclasses import replace

    schedule = replace(
        campaign.schedule,
        timezone="Europe/Berlin",
        weekdays=tuple(range(7)),
        holidays="subscriber",
    )
    table = Timetable.of(replace(campaign, schedule=schedule))
    form = replace(_form("lena@example.com"), timezone="Europe/Berlin", country="DE")
    ticket = request_signup(engine, form, now=NOW)
    thursday = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)  # 08:00 in Berlin
    confirm_signup(engine, table, ticket.request_key, ip="192.0.2.7", user_agent="UA", now=thursday)
    with read_transaction(engine) as conn:
        attributes = conn.scalar(select(_S.c.attributes))
        due = [from_db(d) for d in conn.scalars(select(Delivery.due_at).order_by(Delivery.step))]
    assert attributes == {"country": "DE"}
    # Day 2 is Saturday 10-03, German Unity Day: Sunday 10-04 instead.
    assert f"{due[1].astimezone(ZoneInfo('Europe/Berlin')):%a %m-%d %H:%M}" == "Sun 10-04 09:00"


def from_db(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)
