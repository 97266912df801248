"""Recording bounces and complaints, undoing them, and the claim honouring suppression,
on a real SQLite file and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, insert, inspect, select

from dripline.store import (
    BouncePolicy,
    BounceReport,
    NewSubscriber,
    SqlDeliveryQueue,
    SuppressedError,
    add_suppression,
    enroll_many,
    list_bounces,
    list_suppressions,
    make_engine,
    normalize_email,
    record_bounce,
    subscribe,
    subscriber_timeline,
    undo_bounce,
    upgrade,
)
from dripline.store._migrate import _config
from dripline.store._models import Subscriber

SLUG = "ketamine-therapy"
AT = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)


def enrol_and_send_first(engine: Engine, timetable, *addresses: str) -> dict[str, int]:
    for address in addresses:
        subscribe(engine, timetable, SLUG, NewSubscriber(normalize_email(address)), now=AT)
    queue = SqlDeliveryQueue(engine, lambda slug: timetable)
    sent = {}
    for claimed in queue.claim_due(AT + timedelta(minutes=1), 100):
        queue.mark_sent(
            claimed.delivery_id,
            message_id=f"<{claimed.email}>",
            sent_at=AT + timedelta(minutes=1),
            last_step=False,
        )
        sent[claimed.email] = claimed.delivery_id
    queue.close()
    return sent


def statuses(engine: Engine, address: str) -> list[str]:
    return [e.status for e in subscriber_timeline(engine, SLUG, address)]


def test_hard_bounce_by_token_then_undo(engine, timetable):
    sent = enrol_and_send_first(engine, timetable, "ada@example.com", "bo@example.com")
    now = AT + timedelta(days=1)
    report = BounceReport(
        kind="hard",
        source="mailbox",
        status_code="5.1.1",
        diagnostic="user unknown",
        external_id="r1",
        delivery_id=sent["ada@example.com"],
        raw="raw report",
    )
    done = record_bounce(engine, report, now=now)
    assert (done.action, done.matched_by, done.email) == ("bounced", "token", "ada@example.com")
    assert statuses(engine, "ada@example.com") == ["sent"] + ["cancelled"] * 5
    assert statuses(engine, "bo@example.com") == ["sent"] + ["scheduled"] * 5
    assert record_bounce(engine, report, now=now).action == "duplicate"
    assert [e.email for e in list_suppressions(engine)] == ["ada@example.com"]
    with pytest.raises(SuppressedError, match=r"hard 5\.1\.1 via mailbox"):
        subscribe(engine, timetable, SLUG, NewSubscriber(normalize_email("ada@example.com")))

    restored = undo_bounce(engine, done.event_id, now=now)
    assert restored == {"subscriber": 1, "enrollments": 0, "deliveries": 5, "suppression": 1}
    assert statuses(engine, "ada@example.com") == ["sent"] + ["scheduled"] * 5
    assert list_suppressions(engine) == []
    (event,) = list_bounces(engine)
    assert event.undone_at is not None and event.raw == "raw report"


def test_soft_bounces_outside_the_window_do_not_count(engine, timetable):
    sent = enrol_and_send_first(engine, timetable, "ada@example.com")
    policy = BouncePolicy(soft_limit=3, soft_window=timedelta(days=30))
    actions = []
    for i, days in enumerate([0, 40, 45, 50]):
        report = BounceReport(
            kind="soft",
            source="mailgun",
            email="ADA@example.com",
            status_code="4.2.2",
            external_id=f"s{i}",
        )
        now = AT + timedelta(days=days)
        actions.append(record_bounce(engine, report, now=now, policy=policy).action)
    assert actions == ["counted", "counted", "counted", "suppressed"]
    assert sent  # matched by address: their latest sent delivery
    assert {e.matched_by for e in list_bounces(engine)} == {"address"}


def test_complaint_unsubscribes_everywhere_and_unmatched_changes_nothing(engine, timetable):
    enrol_and_send_first(engine, timetable, "ada@example.com")
    other = NewSubscriber(normalize_email("ada@example.com"))
    subscribe(engine, timetable, "second", other, now=AT)
    stranger = BounceReport(kind="complaint", source="ses", email="nobody@example.net")
    assert record_bounce(engine, stranger, now=AT).action == "unmatched"
    assert list_bounces(engine) == []
    complaint = BounceReport(kind="complaint", source="ses", message_id="<ada@example.com>")
    assert record_bounce(engine, complaint, now=AT).action == "unsubscribed"
    assert set(statuses(engine, "ada@example.com")[1:]) == {"cancelled"}
    assert set(e.status for e in subscriber_timeline(engine, "second", "ada@example.com")) == {
        "cancelled"
    }


def test_claim_cancels_and_import_skips_suppressed_addresses(engine, timetable):
    subscribe(engine, timetable, SLUG, NewSubscriber(normalize_email("ada@example.com")), now=AT)
    add_suppression(engine, "Ada@Example.com", "asked", now=AT)
    queue = SqlDeliveryQueue(engine, lambda slug: timetable)
    assert queue.claim_due(AT + timedelta(days=60), 100) == []
    queue.close()
    assert set(statuses(engine, "ada@example.com")) == {"cancelled"}
    people = [NewSubscriber(normalize_email(a)) for a in ("ada@example.com", "bo@example.com")]
    result = enroll_many(engine, timetable, "second", people, now=AT)
    assert result.enrolled == 1 and [a for a, _ in result.suppressed] == ["ada@example.com"]
    assert "asked" in result.suppressed[0][1]


def test_migration_0005_on_a_database_holding_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
    with engine.begin() as conn:
        conn.execute(
            insert(Subscriber.__table__).values(
                email_key="ada@example.com",
                email="ada@example.com",
                name="",
                first_name="",
                attributes={},
                status="active",
                consent_at=AT.replace(tzinfo=None),
                consent_source="cli",
                created_at=AT.replace(tzinfo=None),
                public_key="k" * 22,
            )
        )
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"bounce_events", "suppressions"} <= tables
    with engine.connect() as conn:
        assert conn.scalar(select(Subscriber.__table__.c.email)) == "ada@example.com"
    engine.dispose()


def test_a_report_holding_nul_characters_is_recorded(engine, timetable):
    """PostgreSQL refuses NUL in text (and in query parameters): a DSN or webhook body that
    carries one must still be recorded, not crash the run."""
    sent = enrol_and_send_first(engine, timetable, "ada@example.com", "bo@example.com")
    report = BounceReport(
        kind="hard",
        source="mailbox",
        status_code="5.1.1",
        diagnostic="user\x00 unknown",
        external_id="nul\x00id",
        delivery_id=sent["ada@example.com"],
        message_id="<x\x00@y>",
        raw="Return-Path: <>\r\n\r\nbinary \x00 junk",
    )
    done = record_bounce(engine, report, now=AT + timedelta(days=1))
    assert done.action == "bounced"
    by_id = replace_fields(report, delivery_id=None, message_id="<bo\x00@example.com>", email=None)
    assert record_bounce(engine, by_id, now=AT + timedelta(days=1)).action == "unmatched"
    (event,) = list_bounces(engine)
    assert event.raw == "Return-Path: <>\r\n\r\nbinary \ufffd junk"
    assert event.diagnostic == "user\ufffd unknown"
    assert record_bounce(engine, report, now=AT + timedelta(days=2)).action == "duplicate"


def replace_fields(report: BounceReport, **changes: object) -> BounceReport:
    from dataclasses import replace

    return replace(report, external_id="other", **changes)


def test_migration_0007_indexes_message_ids_and_the_lookup_uses_it(tmp_path):
    """A report without a token is matched by Message-ID; on a database of millions of
    deliveries that lookup must be an index search, not a scan (SQLite's query plan)."""
    from sqlalchemy import text

    from dripline.store._models import Delivery

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
    upgrade(engine)
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("deliveries")}
    assert indexes["ix_deliveries_message_id"] == ["message_id"]
    lookup = select(Delivery.__table__.c.id).where(Delivery.__table__.c.message_id == "<x@y>")
    compiled = lookup.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        plan = " ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "USING INDEX ix_deliveries_message_id" in plan or "USING COVERING INDEX" in plan, plan
    engine.dispose()


def test_a_status_that_is_no_rfc3463_code_is_dropped_not_a_crash(engine, timetable):
    """The status column holds an RFC 3463 code; PostgreSQL refuses a longer value, so a
    hostile DSN's or webhook's "Status: 5.1.1-and-much-more" must not stop the run."""
    sent = enrol_and_send_first(engine, timetable, "ada@example.com")
    report = BounceReport(
        kind="hard",
        source="sendgrid",
        status_code="5.1.1" + "9" * 40,
        diagnostic="550 5.1.1 no such user",
        external_id="long-status",
        delivery_id=sent["ada@example.com"],
    )
    assert record_bounce(engine, report, now=AT + timedelta(days=1)).action == "bounced"
    (event,) = list_bounces(engine)
    assert event.status_code is None and event.diagnostic == "550 5.1.1 no such user"
