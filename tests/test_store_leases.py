"""Leases: a dead worker's claims go back, its in-flight rows turn ambiguous, order holds."""

from __future__ import annotations

import subprocess
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, select, update
from test_store_queue import SLUG, person

from dripline.store import (
    Delivery,
    Outcome,
    SqlDeliveryQueue,
    expire_leases,
    requeue_ambiguous,
    subscribe,
    subscriber_timeline,
)
from dripline.store._leases import HOST
from dripline.store._models import Worker
from dripline.store._values import to_db_time
from dripline.timetable import Timetable

LA = ZoneInfo("America/Los_Angeles")
AT = datetime(2026, 3, 5, 20, 0, tzinfo=LA)  # the pass's clock: step 1 is due
WALL = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)  # the leases' wall clock


def worker(
    engine: Engine, timetable: Timetable, wall: datetime, lease: float = 60
) -> SqlDeliveryQueue:
    return SqlDeliveryQueue(engine, lambda slug: timetable, lease_seconds=lease, clock=lambda: wall)


def step1(engine: Engine, delivery_id: int) -> tuple[str, int | None, int, str | None]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                select(
                    Delivery.status, Delivery.worker_id, Delivery.attempts, Delivery.last_error
                ).where(Delivery.id == delivery_id)
            ).one()
        )


def test_an_expired_lease_hands_back_claims_and_makes_in_flight_rows_ambiguous(engine, timetable):
    for name in "abc":
        subscribe(engine, timetable, SLUG, person(f"{name}@example.com", AT))
    a = worker(engine, timetable, WALL)
    first, second, third = a.claim_due(AT, 10)
    # A hands `first` to its sender, then stops answering (a stuck process, a partition).
    assert a.settle([], attempt=[first.delivery_id], now=AT).attempting == {first.delivery_id}

    # Within A's lease nobody touches its rows.
    assert worker(engine, timetable, WALL + timedelta(seconds=59)).claim_due(AT, 10) == []
    assert step1(engine, second.delivery_id)[:2] == ("claimed", a.worker_id)

    b = worker(engine, timetable, WALL + timedelta(seconds=61))
    again = b.claim_due(AT, 10)
    assert sorted(c.delivery_id for c in again) == [second.delivery_id, third.delivery_id]
    assert [c.attempt for c in again] == [1, 1]  # never tried: no attempt charged
    status, _, attempts, error = step1(engine, first.delivery_id)
    assert (status, attempts) == ("ambiguous", 1)
    assert f"worker {a.worker_id}" in error and "may have accepted" in error

    # A wakes up: its late outcome for the in-flight row still lands (it held it), but it
    # can no longer send the rows B took over.
    late = a.settle(
        [Outcome(first.delivery_id, "sent", message_id="<1>", sent_at=AT, reply="250 ok")],
        attempt=[second.delivery_id],
        now=AT,
    )
    assert late.attempting == frozenset() and late.unrecorded == ()
    assert step1(engine, first.delivery_id)[0] == "sent"
    assert step1(engine, second.delivery_id)[:2] == ("claimed", b.worker_id)


def test_a_worker_whose_process_is_gone_is_dead_at_once(engine, timetable):
    subscribe(engine, timetable, SLUG, person("a@example.com", AT))
    with engine.begin() as conn:
        dead = conn.execute(
            insert(Worker).values(
                host=HOST,
                pid=_finished_pid(),
                started_at=to_db_time(WALL),
                heartbeat_at=to_db_time(WALL),
                lease_expires_at=to_db_time(WALL + timedelta(hours=1)),
            )
        ).inserted_primary_key[0]
        conn.execute(
            update(Delivery).where(Delivery.step == 1).values(status="claimed", worker_id=dead)
        )
    result = expire_leases(engine, WALL)  # `dripline status` does this first
    assert (result.workers, result.returned, result.ambiguous) == (1, 1, 0)
    claimed = worker(engine, timetable, WALL).claim_due(AT, 10)
    assert [c.step for c in claimed] == [1]


def _finished_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_step_waits_while_an_earlier_one_is_unfinished(engine, timetable):
    subscribe(engine, timetable, SLUG, person("a@example.com", AT))
    a = worker(engine, timetable, WALL)
    (first,) = a.claim_due(AT, 10)
    step2_due = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)
    # Step 1 still claimed by A (a slow pass) while step 2 comes due: B must not send it.
    b = worker(engine, timetable, WALL)
    later = step2_due + timedelta(hours=1)
    assert b.claim_due(later, 10) == []
    timeline = subscriber_timeline(engine, SLUG, "a@example.com")
    assert timeline[1].status == "scheduled" and timeline[1].due_at > later
    # A defers step 1 far ahead (a long backoff): step 2 still waits, now behind it.
    retry = later + timedelta(hours=3)
    a.settle([Outcome(first.delivery_id, "deferred", error="451", next_at=retry)], now=AT)
    assert b.claim_due(later + timedelta(hours=2), 10) == []
    # Once step 1 is due again it goes first, and step 2 after it.
    assert [c.step for c in b.claim_due(retry, 10)] == [1]


def test_requeue_ambiguous_by_campaign_and_age(engine, timetable):
    for name in "ab":
        subscribe(engine, timetable, SLUG, person(f"{name}@example.com", AT))
    q = worker(engine, timetable, WALL)
    claimed = q.claim_due(AT, 10)
    q.settle([], attempt=[c.delivery_id for c in claimed], now=AT)
    q.settle(
        [Outcome(c.delivery_id, "ambiguous", error="lost after DATA") for c in claimed], now=AT
    )
    assert requeue_ambiguous(engine, "other-campaign", now=WALL) == 0
    assert requeue_ambiguous(engine, SLUG, older_than=timedelta(hours=1), now=WALL) == 0
    later = WALL + timedelta(hours=2)
    assert requeue_ambiguous(engine, SLUG, older_than=timedelta(hours=1), now=later) == 2
    again = worker(engine, timetable, later).claim_due(later, 10)
    assert sorted(c.delivery_id for c in again) == sorted(c.delivery_id for c in claimed)
    assert {c.attempt for c in again} == {2}


def test_a_paused_worker_never_sends_rows_a_new_worker_claimed_after_its_lease_ended(
    engine, timetable
):
    # The classic lease bug: A is paused (SIGSTOP, a VM freeze) past its lease; an operator's
    # `dripline status` hands A's claims back and deletes its worker row; a new worker C
    # starts and claims them. A worker id must never be given out again, or A (waking up
    # with its old id) would find C's claims "its own" and send them a second time.
    for name in "ab":
        subscribe(engine, timetable, SLUG, person(f"{name}@example.com", AT))
    a = worker(engine, timetable, WALL)
    held = [c.delivery_id for c in a.claim_due(AT, 10)]
    assert len(held) == 2
    later = WALL + timedelta(seconds=61)
    assert expire_leases(engine, later).returned == 2
    c = worker(engine, timetable, later)
    assert sorted(d.delivery_id for d in c.claim_due(AT, 10)) == sorted(held)
    assert c.worker_id != a.worker_id

    woke = a.settle([], attempt=held, now=AT)  # A resumes (SIGCONT) and goes on sending
    assert woke.attempting == frozenset()
    assert {step1(engine, i)[:2] for i in held} == {("claimed", c.worker_id)}


def test_a_heartbeat_during_the_registering_claim_waits_for_it(engine, timetable):
    # `dripline run` renews the lease from a thread. When it beats while the first claim
    # (which registers the worker) is still open, the row is not yet visible to it: it
    # must wait for the claim, not insert the row a second time and die on the key.
    subscribe(engine, timetable, SLUG, person("a@example.com", AT))
    failures: list[BaseException] = []
    beats: list[threading.Thread] = []

    def beat() -> None:
        try:
            a.heartbeat()
        except BaseException as err:  # what killed the thread
            failures.append(err)

    def timetable_for(slug: str) -> Timetable:  # called inside the claim's transaction
        if not beats:
            beats.append(threading.Thread(target=beat))
            beats[0].start()
            beats[0].join(1.0)  # give it every chance to run into the open claim
        return timetable

    a = SqlDeliveryQueue(engine, timetable_for, clock=lambda: WALL)
    late = datetime(2026, 3, 20, 17, 0, tzinfo=UTC)  # steps 1-3 overdue: later ones re-timed
    assert [c.step for c in a.claim_due(late, 10)] == [1]
    assert beats, "the claim never consulted the timetable"
    beats[0].join(30)
    assert failures == []
    with engine.connect() as conn:
        assert conn.execute(select(Worker.id)).scalars().all() == [a.worker_id]


def test_a_workers_count_of_expired_leases_adds_up_over_its_claims(engine, timetable):
    # dripline_lease_expiries_total: each dead worker this worker found, over all claims.
    for name in "abcd":
        subscribe(engine, timetable, SLUG, person(f"{name}@example.com", AT))
    a = worker(engine, timetable, WALL)
    assert len(a.claim_due(AT, 2)) == 2  # then stops answering
    b = worker(engine, timetable, WALL + timedelta(seconds=61))
    assert b.lease_expiries == 0
    b.claim_due(AT, 1)  # a's lease has run out: a is expired
    assert b.lease_expiries == 1
    c = worker(engine, timetable, WALL + timedelta(seconds=61))
    assert c.claim_due(AT, 1) != []  # then stops answering too
    b.clock = lambda: WALL + timedelta(seconds=200)
    b.claim_due(AT, 1)
    assert b.lease_expiries == 2
    assert c.lease_expiries == 0
