"""One settle, many outcomes: each row gets its own values, on a real SQLite file and PostgreSQL.

The dispatcher records a whole chunk's outcomes in one transaction (on PostgreSQL several
sent rows go in one ``UPDATE ... FROM (VALUES ...)``): these tests settle groups of every
kind at once and read every row back, so a value landing on the wrong row, a lost guard
or a miscounted result shows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select, update

from dripline.store import (
    Delivery,
    Enrollment,
    NewSubscriber,
    Outcome,
    SqlDeliveryQueue,
    Subscriber,
    normalize_email,
    subscribe,
)
from dripline.timetable import Timetable

LA = ZoneInfo("America/Los_Angeles")
SLUG = "ketamine-therapy"
AT = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
NOW = AT.astimezone(UTC) + timedelta(minutes=1)


class Clock:
    """The wall clock the queue stamps ``attempted_at`` with; the test moves it."""

    def __init__(self) -> None:
        self.now = NOW + timedelta(seconds=7)

    def __call__(self) -> datetime:
        return self.now


def enrol(engine: Engine, timetable: Timetable, *names: str) -> None:
    for name in names:
        subscribe(
            engine,
            timetable,
            SLUG,
            NewSubscriber(
                email=normalize_email(f"{name}@example.com"),
                name=name.title(),
                timezone="America/Los_Angeles",
                subscribed_at=AT,
            ),
        )


def rows(engine: Engine) -> dict[str, Any]:
    """Each person's first delivery row, by local part."""
    with engine.connect() as conn:
        found = conn.execute(
            select(Subscriber.email.label("email"), *Delivery.__table__.c)
            .join(Enrollment, Enrollment.subscriber_id == Subscriber.id)
            .join(Delivery, Delivery.enrollment_id == Enrollment.id)
            .where(Delivery.step == 1)
        ).all()
    return {row.email.split("@")[0]: row for row in found}


def utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


def test_a_chunk_of_every_outcome_lands_each_on_its_own_row(engine, timetable):
    names = ["s1", "s2", "s3", "fail", "defer", "amb", "rel", "gone"]
    enrol(engine, timetable, *names)
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    claimed = {c.email.split("@")[0]: c for c in q.claim_due(NOW, 20)}
    ids = {name: claimed[name].delivery_id for name in names}
    started = q.settle([], attempt=list(ids.values()), now=NOW)
    assert started.attempting == frozenset(ids.values())

    sent = [
        Outcome(
            ids[n],
            "sent",
            message_id=f"<{n}@x>",
            sent_at=NOW + timedelta(seconds=i),
            reply=f"250 queued {n}",
            last_step=False,
            subject=f"subject {n}",
            body_digest=f"{i:064x}",
            campaign_commit=f"commit-{n}",
        )
        for i, n in enumerate(["s1", "s2", "s3"], start=1)
    ]
    retry_at = NOW + timedelta(minutes=5)
    result = q.settle(
        [
            *sent,
            Outcome(ids["fail"], "failed", error="550 5.7.1 policy"),
            Outcome(ids["defer"], "deferred", error="451 4.7.1 later", next_at=retry_at),
            Outcome(ids["amb"], "ambiguous", error="lost after DATA"),
            Outcome(ids["rel"], "released"),
            Outcome(ids["gone"], "bounced", error="550 5.1.1 no such user"),
        ],
        attempt=[],
        now=NOW,
    )
    assert (result.recorded, result.unrecorded, result.attempting) == (8, (), frozenset())

    found = rows(engine)
    for i, n in enumerate(["s1", "s2", "s3"], start=1):
        row = found[n]
        assert (row.status, row.message_id, row.reply, row.subject) == (
            "sent",
            f"<{n}@x>",
            f"250 queued {n}",
            f"subject {n}",
        )
        assert (row.body_digest, row.campaign_commit) == (f"{i:064x}", f"commit-{n}")
        assert utc(row.sent_at) == NOW + timedelta(seconds=i)
        assert (row.last_error, row.worker_id, row.attempts) == (None, None, 1)
    assert (found["fail"].status, found["fail"].last_error) == ("failed", "550 5.7.1 policy")
    assert found["fail"].worker_id is None
    defer = found["defer"]
    assert (defer.status, defer.last_error, defer.worker_id) == (
        "scheduled",
        "451 4.7.1 later",
        None,
    )
    assert (utc(defer.due_at), defer.attempts) == (retry_at, 1)
    # Ambiguous keeps its worker (`dripline requeue` clears it).
    amb = found["amb"]
    assert (amb.status, amb.last_error, amb.worker_id) == (
        "ambiguous",
        "lost after DATA",
        q.worker_id,
    )
    # Released from 'sending': the attempt it was charged is given back.
    rel = found["rel"]
    assert (rel.status, rel.attempts, rel.worker_id, rel.last_error) == ("scheduled", 0, None, None)
    gone = found["gone"]
    assert (gone.status, gone.last_error, gone.worker_id) == (
        "failed",
        "550 5.1.1 no such user",
        None,
    )
    # Each row's first attempt is the pass's time; attempted_at is the wall clock.
    for name in ["s1", "fail", "gone"]:
        assert utc(found[name].first_attempt_at) == NOW
        assert utc(found[name].attempted_at) == NOW + timedelta(seconds=7)
    with engine.connect() as conn:
        people = dict(conn.execute(select(Subscriber.email, Subscriber.status)).all())
        later = conn.execute(
            select(Subscriber.email, Delivery.status, Delivery.last_error)
            .join(Enrollment, Enrollment.subscriber_id == Subscriber.id)
            .join(Delivery, Delivery.enrollment_id == Enrollment.id)
            .where(Delivery.step > 1)
        ).all()
    assert {e: s for e, s in people.items() if s != "active"} == {"gone@example.com": "bounced"}
    assert {(s, r) for e, s, r in later if e == "gone@example.com"} == {
        ("cancelled", "address bounced")
    }
    assert {(s, r) for e, s, r in later if e != "gone@example.com"} == {("scheduled", None)}
    q.close()


def test_outcomes_for_rows_no_longer_held_are_returned_not_written(engine, timetable):
    enrol(engine, timetable, "kept", "taken", "done", "held", "late")
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    claimed = {c.email.split("@")[0]: c.delivery_id for c in q.claim_due(NOW, 20)}
    q.settle([], attempt=list(claimed.values()), now=NOW)
    # Another worker took "taken" over; "done" was settled already.
    with engine.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.id == claimed["taken"]).values(worker_id=999))
    q.settle([Outcome(claimed["done"], "failed", error="first")], now=NOW)
    result = q.settle(
        [
            Outcome(claimed["kept"], "sent", message_id="<k@x>", sent_at=NOW, last_step=False),
            Outcome(claimed["taken"], "sent", message_id="<t@x>", sent_at=NOW, last_step=False),
            Outcome(claimed["done"], "failed", error="second"),
            Outcome(claimed["held"], "deferred", error="later", next_at=NOW),
            Outcome(claimed["late"], "bounced", error="550 gone"),
        ],
        now=NOW,
    )
    # "done" is already failed, the state asked for (as when a transaction is retried): not
    # reported, and its first reason stays.
    assert set(result.unrecorded) == {claimed["taken"]}
    assert result.recorded == 3
    found = rows(engine)
    assert (found["taken"].status, found["taken"].message_id) == ("sending", None)
    assert (found["done"].status, found["done"].last_error) == ("failed", "first")
    assert found["kept"].status == "sent"
    # A second bounce for a row this worker no longer holds: not recorded.
    with engine.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.id == claimed["late"]).values(worker_id=998))
    late = q.settle([Outcome(claimed["late"], "bounced", error="again")], now=NOW)
    assert (late.unrecorded, late.recorded) == ((claimed["late"],), 0)
    q.close()


def test_only_rows_still_claimed_by_this_worker_move_to_sending(engine, timetable):
    enrol(engine, timetable, "a", "b", "c")
    clock = Clock()
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=clock)
    claimed = {c.email.split("@")[0]: c.delivery_id for c in q.claim_due(NOW, 20)}
    with engine.begin() as conn:  # "b" was handed to another worker meanwhile
        conn.execute(update(Delivery).where(Delivery.id == claimed["b"]).values(worker_id=999))
    result = q.settle([], attempt=list(claimed.values()), now=NOW)
    assert result.attempting == frozenset({claimed["a"], claimed["c"]})
    # A retried transaction asks again for rows already 'sending': they are still its own.
    again = q.settle([], attempt=[claimed["a"], claimed["c"]], now=NOW)
    assert again.attempting == frozenset({claimed["a"], claimed["c"]})
    found = rows(engine)
    assert (found["a"].status, found["a"].attempts) == ("sending", 1)
    assert (found["b"].status, found["b"].attempts) == ("claimed", 0)
    q.close()


def test_a_second_attempt_keeps_the_first_attempts_time(engine, timetable):
    enrol(engine, timetable, "a")
    clock = Clock()
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=clock)
    (first,) = q.claim_due(NOW, 20)
    q.settle([], attempt=[first.delivery_id], now=NOW)
    q.settle([Outcome(first.delivery_id, "deferred", error="busy", next_at=NOW)], now=NOW)
    later = NOW + timedelta(hours=1)
    clock.now = later + timedelta(seconds=3)
    (second,) = q.claim_due(later, 20)
    assert (second.attempt, second.first_attempt_at) == (2, NOW)
    q.settle([], attempt=[second.delivery_id], now=later)
    row = rows(engine)["a"]
    assert (row.attempts, utc(row.first_attempt_at)) == (2, NOW)
    assert utc(row.attempted_at) == later + timedelta(seconds=3)
    q.close()


def test_the_last_step_sent_completes_the_enrollment_only_when_nothing_is_pending(
    engine, timetable
):
    enrol(engine, timetable, "done", "pending")
    with engine.begin() as conn:  # "done" has only its first step left
        conn.execute(
            update(Delivery)
            .where(Delivery.step > 1)
            .where(
                Delivery.enrollment_id.in_(
                    select(Enrollment.id)
                    .join(Subscriber)
                    .where(Subscriber.email == "done@example.com")
                )
            )
            .values(status="sent")
        )
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    claimed = {c.email.split("@")[0]: c.delivery_id for c in q.claim_due(NOW, 20)}
    q.settle([], attempt=list(claimed.values()), now=NOW)
    q.settle(
        [
            Outcome(claimed[n], "sent", message_id=f"<{n}@x>", sent_at=NOW, last_step=True)
            for n in ("done", "pending")
        ],
        now=NOW,
    )
    with engine.connect() as conn:
        enrolments = dict(
            conn.execute(select(Subscriber.email, Enrollment.status).join(Enrollment)).all()
        )
    assert enrolments == {"done@example.com": "completed", "pending@example.com": "active"}
    q.close()


def test_a_row_deferred_to_an_instant_keeps_its_turn_among_rows_due_then(engine, timetable):
    # Rows due at the same instant go oldest first (by id), however the due time was
    # written: by the enrollment (SQLAlchemy) or by a deferral (the fast path's own SQL).
    enrol(engine, timetable, "first", "second")
    retry_at = NOW + timedelta(minutes=5)  # a whole second
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    claimed = {c.email.split("@")[0]: c.delivery_id for c in q.claim_due(NOW, 20)}
    q.settle([], attempt=[claimed["second"]], now=NOW)
    q.settle(
        [
            Outcome(claimed["second"], "deferred", error="busy", next_at=retry_at),
            Outcome(claimed["first"], "released"),
        ],
        now=NOW,
    )
    with engine.begin() as conn:  # the first subscriber's row falls due at the same instant
        conn.execute(
            update(Delivery)
            .where(Delivery.id == claimed["first"])
            .values(due_at=retry_at.replace(tzinfo=None))
        )
    assert claimed["first"] < claimed["second"]
    (turn,) = q.claim_due(retry_at, 1)
    assert turn.delivery_id == claimed["first"]
    assert [c.delivery_id for c in q.claim_due(retry_at, 1)] == [claimed["second"]]
    q.close()


def test_a_skipped_step_is_final_and_a_skipped_last_step_completes_the_enrollment(
    engine, timetable
):
    # A step whose `when` is false for a subscriber is skipped: never sent, never retried,
    # and if it was their last one pending the enrollment is complete.
    enrol(engine, timetable, "done", "pending")
    with engine.begin() as conn:  # "done" has only its first step left
        conn.execute(
            update(Delivery)
            .where(Delivery.step > 1)
            .where(
                Delivery.enrollment_id.in_(
                    select(Enrollment.id)
                    .join(Subscriber)
                    .where(Subscriber.email == "done@example.com")
                )
            )
            .values(status="sent")
        )
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    claimed = {c.email.split("@")[0]: c.delivery_id for c in q.claim_due(NOW, 20)}
    result = q.settle(
        [Outcome(claimed[n], "skipped", last_step=True) for n in ("done", "pending")], now=NOW
    )
    assert result.recorded == 2 and result.unrecorded == ()
    found = rows(engine)
    assert {n: (found[n].status, found[n].worker_id, found[n].attempts) for n in found} == {
        "done": ("skipped", None, 0),
        "pending": ("skipped", None, 0),
    }
    with engine.connect() as conn:
        enrolments = dict(
            conn.execute(select(Subscriber.email, Enrollment.status).join(Enrollment)).all()
        )
    assert enrolments == {"done@example.com": "completed", "pending@example.com": "active"}
    # Later, only pending's next step is claimed: a skipped row is never claimed again.
    later = q.claim_due(NOW + timedelta(days=30), 20)
    assert [(c.email, c.step) for c in later] == [("pending@example.com", 2)]
    q.close()


def test_a_late_outcome_for_a_row_taken_over_is_returned_for_every_kind(engine, timetable):
    # The worker's lease ran out: another worker took its rows. A failure, a deferral or a
    # hand-back it reports afterwards is not written, and is returned as unrecorded.
    enrol(engine, timetable, "failed", "deferred", "released", "ambiguous", "kept")
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    claimed = {c.email.split("@")[0]: c.delivery_id for c in q.claim_due(NOW, 20)}
    q.settle([], attempt=list(claimed.values()), now=NOW)
    taken = [claimed[n] for n in ("failed", "deferred", "released", "ambiguous")]
    with engine.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.id.in_(taken)).values(worker_id=999))
    result = q.settle(
        [
            Outcome(claimed["failed"], "failed", error="550 no"),
            Outcome(claimed["deferred"], "deferred", error="451 later", next_at=NOW),
            Outcome(claimed["released"], "released"),
            Outcome(claimed["ambiguous"], "ambiguous", error="lost"),
            Outcome(claimed["kept"], "failed", error="550 no"),
        ],
        now=NOW,
    )
    assert sorted(result.unrecorded) == sorted(taken)
    assert result.recorded == 1
    found = rows(engine)
    assert {n: (found[n].status, found[n].worker_id) for n in claimed if n != "kept"} == {
        n: ("sending", 999) for n in ("failed", "deferred", "released", "ambiguous")
    }
    assert found["kept"].status == "failed"
    q.close()


def test_a_row_made_ambiguous_while_sending_is_never_handed_back_to_be_sent_again(
    engine, timetable
):
    # The worker stalled mid-send; its lease ran out and the row was made ambiguous (it may
    # have gone out). When the worker then hands it back as untried, the row must stay
    # ambiguous: released, it would be claimed and sent a second time.
    enrol(engine, timetable, "a")
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    (first,) = q.claim_due(NOW, 20)
    q.settle([], attempt=[first.delivery_id], now=NOW)
    with engine.begin() as conn:  # as expire_leases leaves it (the worker id stays)
        conn.execute(
            update(Delivery).where(Delivery.id == first.delivery_id).values(status="ambiguous")
        )
    result = q.settle([Outcome(first.delivery_id, "released")], now=NOW)
    assert (result.unrecorded, result.recorded) == ((first.delivery_id,), 0)
    assert (rows(engine)["a"].status, rows(engine)["a"].attempts) == ("ambiguous", 1)
    assert q.claim_due(NOW + timedelta(days=1), 20) == []
    # But what the relay answered for it, arriving late, still lands: now it is known.
    late = q.settle([Outcome(first.delivery_id, "failed", error="550 5.1.1 gone")], now=NOW)
    assert (late.unrecorded, late.recorded) == ((), 1)
    assert (rows(engine)["a"].status, rows(engine)["a"].last_error) == ("failed", "550 5.1.1 gone")
    q.close()
