"""Claiming due deliveries and recording outcomes, on a real SQLite file and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import _reset_postgres
from sqlalchemy import Engine, select, text, update

from dripline.store import (
    DELIVERY_STATUSES,
    ClaimedDelivery,
    Delivery,
    DeliveryStateError,
    Enrollment,
    NewSubscriber,
    SqlDeliveryQueue,
    StoreError,
    Subscriber,
    _queue,
    enroll_many,
    normalize_email,
    open_store,
    subscribe,
    subscriber_timeline,
    unsubscribe,
)
from dripline.store._models import Worker
from dripline.timetable import Timetable

LA = ZoneInfo("America/Los_Angeles")
SLUG = "ketamine-therapy"
WORKER = Path(__file__).resolve().parent / "claim_worker.py"


def person(email: str, at: datetime, tz: str | None = "America/Los_Angeles") -> NewSubscriber:
    return NewSubscriber(
        email=normalize_email(email), name="Ada Lovelace", timezone=tz, subscribed_at=at
    )


def queue(engine: Engine, timetable: Timetable) -> SqlDeliveryQueue:
    return SqlDeliveryQueue(engine, lambda slug: timetable)


def attempt(q: SqlDeliveryQueue, claimed: list, now: datetime) -> None:
    """Move claimed rows to 'sending', as the dispatcher does just before sending them."""
    result = q.settle([], attempt=[c.delivery_id for c in claimed], now=now)
    assert result.attempting == {c.delivery_id for c in claimed}


def statuses(engine: Engine, email: str) -> list[str]:
    return [e.status for e in subscriber_timeline(engine, SLUG, email)]


def test_claim_takes_due_rows_once_and_outcomes_are_recorded(engine, timetable):
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    subscribe(engine, timetable, SLUG, person("ada@example.com", at))
    q = queue(engine, timetable)
    assert q.claim_due(at - timedelta(seconds=1), 10) == []
    claimed = q.claim_due(at, 10)
    assert [(c.step, c.email, c.first_name, c.campaign) for c in claimed] == [
        (1, "ada@example.com", "Ada", SLUG)
    ]
    assert claimed[0].attempt == 1
    assert q.claim_due(at + timedelta(hours=1), 10) == []  # 'claimed' is never claimed again
    attempt(q, claimed, at)
    sent_at = at + timedelta(seconds=5)
    q.mark_sent(
        claimed[0].delivery_id, message_id="<m1@example.com>", sent_at=sent_at, reply="250 ok"
    )
    with pytest.raises(DeliveryStateError, match="status: sent"):
        q.mark_sent(claimed[0].delivery_id, message_id="<again>", sent_at=sent_at)
    with engine.connect() as conn:
        row = conn.execute(select(Delivery).where(Delivery.id == claimed[0].delivery_id)).one()
    assert (row.status, row.message_id, row.reply, row.attempts) == (
        "sent",
        "<m1@example.com>",
        "250 ok",
        1,
    )
    assert row.sent_at == sent_at.astimezone(UTC).replace(tzinfo=None)
    assert statuses(engine, "ada@example.com") == ["sent"] + ["scheduled"] * 5


def test_deferred_failed_and_ambiguous_outcomes(engine, timetable):
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    for n in range(3):
        subscribe(engine, timetable, SLUG, person(f"p{n}@example.com", at))
    q = queue(engine, timetable)
    first, second, third = q.claim_due(at, 10)
    attempt(q, [first, second, third], at)
    retry_at = at + timedelta(minutes=5)
    q.mark_deferred(first.delivery_id, retry_at, "421 try later")
    q.mark_failed(second.delivery_id, "550 no such user")
    q.mark_ambiguous(third.delivery_id, "connection lost after DATA")
    assert q.claim_due(retry_at - timedelta(seconds=1), 10) == []
    again = q.claim_due(retry_at, 10)
    assert [(c.delivery_id, c.attempt) for c in again] == [(first.delivery_id, 2)]
    assert statuses(engine, "p1@example.com")[0] == "failed"
    assert statuses(engine, "p2@example.com")[0] == "ambiguous"


def test_unsubscribe_between_steps_stops_the_rest(engine, timetable):
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    subscribe(engine, timetable, SLUG, person("ada@example.com", at))
    subscribe(engine, timetable, SLUG, person("bob@example.com", at))
    q = queue(engine, timetable)
    for claimed in q.claim_due(at, 10):
        q.mark_sent(claimed.delivery_id, message_id="<x>", sent_at=at)
    assert unsubscribe(engine, "ADA@Example.com") == 5
    assert statuses(engine, "ada@example.com") == ["sent"] + ["cancelled"] * 5
    later = q.claim_due(datetime(2026, 4, 30, tzinfo=UTC), 100)
    assert {c.email for c in later} == {"bob@example.com"}


def test_status_is_rechecked_at_claim_time(engine, timetable):
    """A bounce recorded directly in the table (no unsubscribe call) still stops mail."""
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    subscribe(engine, timetable, SLUG, person("gone@example.com", at))
    with engine.begin() as conn:
        conn.execute(update(Subscriber).values(status="bounced"))
    assert queue(engine, timetable).claim_due(at, 10) == []
    assert statuses(engine, "gone@example.com")[0] == "cancelled"


def test_restart_after_two_day_gap_sends_one_per_subscriber_and_retimes(engine, timetable):
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    emails = ["a@example.com", "b@example.com", "c@example.com"]
    for email in emails:
        subscribe(engine, timetable, SLUG, person(email, at))
    q = queue(engine, timetable)
    for claimed in q.claim_due(at, 10):
        q.mark_sent(claimed.delivery_id, message_id="<1>", sent_at=at)
    # Down from Sunday until Wednesday 08:00: steps 2 (Mon) and 3 (Tue) are overdue and
    # step 4 (Wed 09:00) would follow an hour after step 2.
    restart = datetime(2026, 3, 11, 8, 0, tzinfo=LA)
    claimed = q.claim_due(restart, 100)
    assert sorted((c.email, c.step) for c in claimed) == [(e, 2) for e in emails]
    for c in claimed:
        q.mark_sent(c.delivery_id, message_id=f"<{c.delivery_id}>", sent_at=restart)
    assert q.claim_due(restart + timedelta(hours=20), 100) == []
    for email in emails:
        timeline = subscriber_timeline(engine, SLUG, email)
        local = [e.due_at.astimezone(LA).strftime("%a %m-%d %H:%M") for e in timeline[2:]]
        assert local == ["Fri 03-13 09:00", "Mon 03-16 09:00", "Tue 03-17 09:00", "Thu 03-19 09:00"]
    # Run the clock on hour by hour: every step goes out, never two on one local day.
    sent_days: dict[str, list] = {e: [] for e in emails}
    clock = restart
    while clock < datetime(2026, 4, 1, tzinfo=LA):
        clock += timedelta(hours=1)
        for c in q.claim_due(clock, 100):
            sent_days[c.email].append((c.step, clock.astimezone(LA).date()))
            q.mark_sent(c.delivery_id, message_id="<n>", sent_at=clock)
    for email in emails:
        assert [s for s, _ in sent_days[email]] == [3, 4, 5, 6]
        days = [d for _, d in sent_days[email]]
        assert len(set(days)) == 4
        assert statuses(engine, email) == ["sent"] * 6
    with engine.connect() as conn:
        assert set(conn.scalars(select(Enrollment.status))) == {"completed"}


def test_overdue_backlog_claims_earliest_step_only(engine, timetable):
    """Imported with an old subscription date: one email now, not six."""
    long_ago = datetime(2026, 1, 5, 9, 0, tzinfo=LA)
    enroll_many(engine, timetable, SLUG, [person("old@example.com", long_ago)])
    now = datetime(2026, 3, 4, 12, 0, tzinfo=LA)
    claimed = queue(engine, timetable).claim_due(now, 100)
    assert [c.step for c in claimed] == [1]
    due = [e.due_at.astimezone(LA) for e in subscriber_timeline(engine, SLUG, "old@example.com")]
    assert all(d.date() > now.date() for d in due[1:])


def run_workers(url: str, now: datetime, tmp_path: Path, count: int = 2) -> list[list[int]]:
    go = tmp_path / "go"
    outs = [tmp_path / f"claimed-{n}.txt" for n in range(count)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, now.isoformat(), str(out), str(go), str(count)]
        )
        for out in outs
    ]
    deadline = time.monotonic() + 60
    while not all(Path(f"{out}.ready").exists() for out in outs):
        assert time.monotonic() < deadline, "claim workers did not start"
        time.sleep(0.01)
    go.touch()
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    return [[int(x) for x in out.read_text().split()] for out in outs]


def test_two_processes_never_claim_the_same_delivery(engine, db_url, timetable, tmp_path):
    now = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    people = [person(f"user{n}@example.com", now - timedelta(minutes=1)) for n in range(1500)]
    enroll_many(engine, timetable, SLUG, people)
    claimed = run_workers(db_url, now, tmp_path)
    everything = claimed[0] + claimed[1]
    assert len(everything) == len(set(everything)) == 1500
    assert all(claimed), "both processes claimed some rows"
    with engine.connect() as conn:
        claimed = set(conn.scalars(select(Delivery.id).where(Delivery.status == "claimed")))
    assert claimed == set(everything)


# --- what a claim hands over, and what every outcome leaves in the table ---


def _row(engine: Engine, delivery_id: int):
    with engine.connect() as conn:
        return conn.execute(select(Delivery).where(Delivery.id == delivery_id)).one()


def test_a_claim_hands_over_everything_rendering_needs(engine, campaign, timetable):
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    ada = NewSubscriber(
        email=normalize_email("Ada@Example.com"),
        name="Ada Lovelace",
        timezone="Europe/London",
        subscribed_at=at,
        attributes={"plan": "gold", "visits": 3},
    )
    subscribe(engine, timetable, SLUG, ada)
    subscribe(engine, timetable, SLUG, person("bob@example.com", at, tz=None))
    q = queue(engine, timetable)
    now = at + timedelta(seconds=30)
    claimed = {c.email: c for c in q.claim_due(now.replace(tzinfo=None) - now.utcoffset(), 10)}
    with engine.connect() as conn:
        keys = dict(conn.execute(select(Subscriber.email, Subscriber.public_key)).all())
        enrollment = conn.scalar(select(Enrollment.id).join(Subscriber).where(Subscriber.id == 1))
    first = claimed["Ada@example.com"]
    assert first == ClaimedDelivery(
        delivery_id=first.delivery_id,
        enrollment_id=enrollment,
        campaign=SLUG,
        step=1,
        due_at=at.astimezone(UTC),
        attempt=1,
        email="Ada@example.com",
        name="Ada Lovelace",
        first_name="Ada",
        timezone="Europe/London",
        attributes={"plan": "gold", "visits": 3},
        first_attempt_at=now.astimezone(UTC),  # a naive `now` is UTC
        public_key=keys["Ada@example.com"],
        step_id=campaign.step(1).id,  # the step's stable identity, never its position
    )
    assert first.step_id == "rapid-relief"
    assert first.due_at.tzinfo is UTC and len(first.public_key) >= 16
    bob = claimed["bob@example.com"]
    assert (bob.timezone, bob.attributes, bob.public_key) == (None, {}, keys["bob@example.com"])


def test_every_outcome_keeps_its_reason(engine, timetable):
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    for n in range(4):
        subscribe(engine, timetable, SLUG, person(f"p{n}@example.com", at))
    q = queue(engine, timetable)
    deferred, failed, ambiguous, sent = q.claim_due(at, 10)
    retry_at = at + timedelta(minutes=5)
    q.mark_deferred(deferred.delivery_id, retry_at, "421 4.7.0 try later")
    q.mark_failed(failed.delivery_id, "550 5.7.1 policy")
    q.mark_ambiguous(ambiguous.delivery_id, "connection lost after DATA")
    q.mark_sent(sent.delivery_id, message_id="<s@x>", sent_at=at, reply="250 ok")
    rows = {
        name: _row(engine, c.delivery_id)
        for name, c in [("d", deferred), ("f", failed), ("a", ambiguous), ("s", sent)]
    }
    assert (rows["d"].status, rows["d"].last_error) == ("scheduled", "421 4.7.0 try later")
    assert rows["d"].due_at == retry_at.astimezone(UTC).replace(tzinfo=None)
    assert (rows["f"].status, rows["f"].last_error) == ("failed", "550 5.7.1 policy")
    assert (rows["a"].status, rows["a"].last_error) == ("ambiguous", "connection lost after DATA")
    assert (rows["s"].status, rows["s"].last_error) == ("sent", None)
    # Sent after a deferral: the old reason is cleared.
    (retried,) = q.claim_due(retry_at, 10)
    q.mark_sent(retried.delivery_id, message_id="<r@x>", sent_at=retry_at, reply="250 ok")
    assert _row(engine, retried.delivery_id).last_error is None
    with pytest.raises(
        DeliveryStateError, match=r"^delivery 999999 is not being sent \(status: missing\)$"
    ):
        q.mark_failed(999_999, "x")


def test_a_bounce_fails_the_delivery_and_cancels_only_that_subscribers_mail(engine, timetable):
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    subscribe(engine, timetable, SLUG, person("gone@example.com", at))
    subscribe(engine, timetable, SLUG, person("stays@example.com", at))
    q = queue(engine, timetable)
    claimed = {c.email: c for c in q.claim_due(at, 10)}
    q.mark_bounced(claimed["gone@example.com"].delivery_id, "550 5.1.1 no such user")
    gone = _row(engine, claimed["gone@example.com"].delivery_id)
    assert (gone.status, gone.last_error) == ("failed", "550 5.1.1 no such user")
    assert statuses(engine, "gone@example.com") == ["failed"] + ["cancelled"] * 5
    with engine.connect() as conn:
        people = dict(conn.execute(select(Subscriber.email, Subscriber.status)).all())
        reasons = set(
            conn.scalars(select(Delivery.last_error).where(Delivery.status == "cancelled"))
        )
    assert people == {"gone@example.com": "bounced", "stays@example.com": "active"}
    assert reasons == {"address bounced"}
    assert statuses(engine, "stays@example.com") == ["claimed"] + ["scheduled"] * 5
    with pytest.raises(DeliveryStateError, match=r"\(status: failed\)"):
        q.mark_bounced(claimed["gone@example.com"].delivery_id, "again")


def test_release_puts_claims_back_as_they_were(engine, timetable):
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    for n in range(3):
        subscribe(engine, timetable, SLUG, person(f"p{n}@example.com", at))
    q = queue(engine, timetable)
    a, b, c = q.claim_due(at, 10)
    q.mark_sent(c.delivery_id, message_id="<c@x>", sent_at=at)
    q.release([])  # nothing to do
    q.release([a.delivery_id, b.delivery_id, c.delivery_id])  # c was sent: stays sent
    assert [_row(engine, d.delivery_id).status for d in (a, b, c)] == [
        "scheduled",
        "scheduled",
        "sent",
    ]
    again = q.claim_due(at, 10)
    assert sorted(d.delivery_id for d in again) == sorted([a.delivery_id, b.delivery_id])
    assert {d.attempt for d in again} == {1}  # the refunded attempt is not counted


def test_only_inactive_subscribers_rows_are_cancelled_at_claim(engine, timetable):
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    subscribe(engine, timetable, SLUG, person("gone@example.com", at))
    subscribe(engine, timetable, SLUG, person("ada@example.com", at))
    with engine.begin() as conn:
        conn.execute(update(Subscriber).where(Subscriber.email == "gone@example.com")
                     .values(status="unsubscribed"))  # fmt: skip
    q = queue(engine, timetable)
    first = [c.email for c in q.claim_due(at, 1)]  # the oldest row is the inactive one's
    with engine.connect() as conn:
        cancelled = conn.execute(
            select(Delivery.step, Delivery.last_error).where(Delivery.status == "cancelled")
        ).all()
    assert cancelled == [(1, "subscriber is no longer active")]
    assert first + [c.email for c in q.claim_due(at, 10)] == ["ada@example.com"]
    assert statuses(engine, "ada@example.com")[0] == "claimed"


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_claim_takes_exactly_limit_oldest_first(engine, timetable, limit: int):
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    for n in range(3):  # one a minute: p0 is the oldest
        subscribe(engine, timetable, SLUG, person(f"p{n}@example.com", at + timedelta(minutes=n)))
    claimed = queue(engine, timetable).claim_due(at + timedelta(hours=1), limit)
    assert [c.email for c in claimed] == [f"p{n}@example.com" for n in range(limit)]


def test_a_claim_walks_the_due_rows_in_order_instead_of_sorting_them_all(engine, timetable):
    """A whole list due at one time: the claim's plan reads the index in the claim's
    order and stops at the limit, never sorting every due row (migration 0013)."""
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    people = (
        NewSubscriber(email=normalize_email(f"r{i}@example.com"), subscribed_at=at)
        for i in range(3000)
    )
    enroll_many(engine, timetable, SLUG, people, now=at)
    query = queue(engine, timetable)._candidates
    compiled = query.compile(dialect=engine.dialect)
    values = {**compiled.params, "now": datetime(2026, 3, 7), "limit": 500}
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE")
            plan = [r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled.string}", values)]
            assert not any("Sort" in line for line in plan), plan
            assert "ix_deliveries_status_due" in "\n".join(plan), plan
        else:
            conn.exec_driver_sql("ANALYZE")
            order = tuple(values[name] for name in compiled.positiontup)
            plan = [
                r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", order)
            ]
            assert not any("TEMP B-TREE" in line for line in plan), plan
    # And the claim takes the oldest first, in id order among equals.
    claimed = queue(engine, timetable).claim_due(datetime(2026, 3, 7), 500)
    ids = [c.delivery_id for c in claimed]
    assert len(ids) == 500 and ids == sorted(ids)


def test_queue_depth_counts_every_status_zeros_included(engine, timetable):
    # What `dripline run --metrics-port` publishes as dripline_queue_depth{status}.
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    q = queue(engine, timetable)
    assert q.queue_depth() == dict.fromkeys(DELIVERY_STATUSES, 0)  # an empty store
    for name in ("ada", "bob", "cy"):
        subscribe(engine, timetable, SLUG, person(f"{name}@example.com", at))
    first, _second, third = q.claim_due(at, 10)
    attempt(q, [first], at)
    q.mark_sent(first.delivery_id, message_id="<m1@example.com>", sent_at=at, reply="250 ok")
    q.release([third.delivery_id])
    depth = q.queue_depth()
    assert list(depth) == list(DELIVERY_STATUSES)
    assert depth == {
        **dict.fromkeys(DELIVERY_STATUSES, 0),
        "sent": 1,
        "claimed": 1,  # second
        "scheduled": 3 * 5 + 1,  # the later steps, and third handed back
    }


def test_a_steps_link_positions_are_stable_and_new_links_come_after(engine, timetable):
    # Click tokens carry a link's position: the same URL keeps its position in every later
    # message of the step, whoever asks first; a URL new to the step gets the next one.
    q = queue(engine, timetable)
    first = ["https://a.example/", "https://b.example/"]
    assert q.link_positions(SLUG, "rapid-relief", first) == [0, 1]
    again = ["https://b.example/", "https://c.example/", "https://a.example/"]
    assert q.link_positions(SLUG, "rapid-relief", again) == [1, 2, 0]
    other = queue(engine, timetable)  # another worker
    assert other.link_positions(SLUG, "rapid-relief", ["https://c.example/"]) == [2]
    # Positions are per step.
    assert q.link_positions(SLUG, "neuroplasticity", ["https://c.example/"]) == [0]


def test_two_claims_for_a_subscriber_without_a_key_agree_on_one(timetable, monkeypatch):
    # Rows inserted without a public key get one at their first claim. Two workers
    # claiming that subscriber's rows of two campaigns at once (PostgreSQL runs both
    # transactions together) must end with the key both put in their emails' links.
    url = os.environ.get("DRIPLINE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("DRIPLINE_TEST_POSTGRES_URL is not set (see .ci/postgres.sh)")
    _reset_postgres(url)
    engine = open_store(url)
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    for slug in (SLUG, "second-campaign"):
        subscribe(engine, timetable, slug, person("ada@example.com", at))
    with engine.begin() as conn:
        conn.execute(update(Subscriber).values(public_key=None))
    first_inside = threading.Event()
    second_done = threading.Event()
    minted = iter(["key-of-the-first-claim", "key-of-the-second-claim"])
    real = _queue.new_public_key

    def new_key() -> str:
        key = next(minted, None) or real()
        if threading.current_thread().name == "first-claim":
            first_inside.set()  # the first claim read the rows; the second runs now
            assert second_done.wait(30)
        return key

    monkeypatch.setattr(_queue, "new_public_key", new_key)
    first, second = queue(engine, timetable), queue(engine, timetable)
    claimed: dict[str, list] = {}
    worker = threading.Thread(
        target=lambda: claimed.__setitem__("first", first.claim_due(at, 1)), name="first-claim"
    )
    worker.start()
    assert first_inside.wait(30)
    claimed["second"] = second.claim_due(at, 1)
    second_done.set()
    worker.join(30)
    with engine.connect() as conn:
        stored = conn.scalar(select(Subscriber.public_key))
    keys = {c.public_key for batch in claimed.values() for c in batch}
    campaigns = sorted(c.campaign for b in claimed.values() for c in b)
    assert campaigns == sorted([SLUG, "second-campaign"])
    assert keys == {stored}
    first.close()
    second.close()
    engine.dispose()


def test_a_claim_whose_session_the_server_ends_is_made_once_more_on_a_new_one(
    timetable, monkeypatch
):
    # PostgreSQL restarted (or an administrator ended the session) in the middle of a
    # claim: it is rolled back, so the claim is made again on a new connection, once.
    url = os.environ.get("DRIPLINE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("DRIPLINE_TEST_POSTGRES_URL is not set (see .ci/postgres.sh)")
    _reset_postgres(url)
    engine = open_store(url)
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    subscribe(engine, timetable, SLUG, person("ada@example.com", at))
    real = _queue.expire_dead_workers
    ended: list[int] = []

    def end_my_session_once(conn, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not ended:
            pid = conn.scalar(text("SELECT pg_backend_pid()"))
            with engine.connect() as admin:
                admin.scalar(text(f"SELECT pg_terminate_backend({pid})"))
                admin.commit()
            ended.append(pid)
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(_queue, "expire_dead_workers", end_my_session_once)
    q = queue(engine, timetable)
    claimed = q.claim_due(at, 10)
    assert len(ended) == 1
    assert [(c.step, c.email) for c in claimed] == [(1, "ada@example.com")]
    with engine.connect() as conn:
        workers = conn.execute(select(Worker.id)).scalars().all()
        row = conn.execute(select(Delivery.status, Delivery.worker_id).where(Delivery.step == 1))
        assert row.one() == ("claimed", q.worker_id)
    assert workers == [q.worker_id]  # the first registration was rolled back with its claim
    q.close()
    engine.dispose()


@pytest.mark.parametrize(
    ("lost", "tries"),
    [(False, 1), (True, 2)],
    ids=["not-a-lost-connection-no-retry", "lost-again-given-up-after-two"],
)
def test_a_claim_that_keeps_failing_raises_its_error_after_at_most_one_retry(
    engine, timetable, monkeypatch, lost: bool, tries: int
):
    # Only a lost connection is worth a second try; a claim that cannot be made raises
    # its StoreError to the caller (`dripline run` logs it and tries at the next tick).
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    subscribe(engine, timetable, SLUG, person("ada@example.com", at))
    calls: list[int] = []

    def failing(conn, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        error = StoreError("the database is full")
        error.connection_lost = lost
        raise error

    monkeypatch.setattr(_queue, "expire_dead_workers", failing)
    q = queue(engine, timetable)
    with pytest.raises(StoreError, match="the database is full") as raised:
        q.claim_due(at, 10)
    assert raised.value.connection_lost is lost
    assert len(calls) == tries
    assert q.worker_id is None  # every registration was rolled back with its claim
    monkeypatch.undo()
    assert [c.step for c in q.claim_due(at, 10)] == [1]  # nothing was lost meanwhile
    q.close()


def test_a_second_worker_claims_other_rows_while_the_first_claim_is_still_open(
    timetable, monkeypatch
):
    # PostgreSQL: two `dripline run` workers claim at the same moment. The second skips
    # the rows the first has locked (FOR UPDATE SKIP LOCKED) and takes the next ones,
    # without waiting for the first to commit; no row is claimed twice.
    url = os.environ.get("DRIPLINE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("DRIPLINE_TEST_POSTGRES_URL is not set (see .ci/postgres.sh)")
    _reset_postgres(url)
    engine = open_store(url)
    at = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    for n in range(4):
        subscribe(engine, timetable, SLUG, person(f"p{n}@example.com", at))
    first_inside = threading.Event()
    second_done = threading.Event()
    real = _queue.retime_later_steps

    def retime(*args, **kwargs):  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "first-claim":
            first_inside.set()  # its rows are read and locked; its transaction stays open
            second_done.wait(15)
        return real(*args, **kwargs)

    monkeypatch.setattr(_queue, "retime_later_steps", retime)
    first, second = queue(engine, timetable), queue(engine, timetable)
    claimed: dict[str, list] = {}
    worker = threading.Thread(
        target=lambda: claimed.__setitem__("first", first.claim_due(at, 2)), name="first-claim"
    )
    worker.start()
    assert first_inside.wait(30)
    other = threading.Thread(target=lambda: claimed.__setitem__("second", second.claim_due(at, 2)))
    other.start()
    other.join(10)
    finished_meanwhile = not other.is_alive()
    second_done.set()
    worker.join(30)
    other.join(30)
    assert finished_meanwhile  # the second claim did not wait for the first
    ids = [c.delivery_id for batch in claimed.values() for c in batch]
    assert len(claimed["first"]) == len(claimed["second"]) == 2
    assert len(set(ids)) == 4
    first.close()
    second.close()
    engine.dispose()
