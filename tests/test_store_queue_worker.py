"""The queue as one worker: its lease, what it hands back, its errors, and a claim that is
never short while due rows remain, on a real SQLite file and PostgreSQL.

Leases are measured on a clock the test moves (no waiting); every check reads the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, insert, select, update
from test_store_queue import SLUG, person

from dripline.errors import DriplineError
from dripline.store import (
    Delivery,
    DeliveryStateError,
    Enrollment,
    SqlDeliveryQueue,
    Subscriber,
    add_suppression,
    subscribe,
)
from dripline.store._models import CampaignRevision, Worker

LA = ZoneInfo("America/Los_Angeles")
AT = datetime(2026, 3, 5, 20, 0, tzinfo=LA)  # step 1 is due
WALL = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = WALL

    def __call__(self) -> datetime:
        return self.now


def lease_of(engine: Engine) -> dict[int, tuple[datetime, datetime]]:
    """Each worker row: (heartbeat_at, lease_expires_at), aware UTC."""
    with engine.connect() as conn:
        found = conn.execute(select(Worker.id, Worker.heartbeat_at, Worker.lease_expires_at))
        return {i: (h.replace(tzinfo=UTC), e.replace(tzinfo=UTC)) for i, h, e in found}


def status_of(engine: Engine, delivery_id: int) -> tuple[str, int | None, str | None]:
    with engine.connect() as conn:
        row = conn.execute(
            select(Delivery.status, Delivery.worker_id, Delivery.last_error).where(
                Delivery.id == delivery_id
            )
        ).one()
    return tuple(row)  # type: ignore[return-value]


@pytest.mark.parametrize("lease", [0, -1.0])
def test_a_lease_must_be_positive(engine, timetable, lease):
    with pytest.raises(DriplineError, match=r"^the lease must be a positive number of seconds$"):
        SqlDeliveryQueue(engine, lambda slug: timetable, lease_seconds=lease)
    SqlDeliveryQueue(engine, lambda slug: timetable, lease_seconds=0.001).close()


def test_the_lease_is_renewed_once_a_third_of_it_has_passed(engine, timetable):
    for n in range(4):
        subscribe(engine, timetable, SLUG, person(f"p{n}@example.com", AT))
    clock = Clock()
    q = SqlDeliveryQueue(engine, lambda slug: timetable, lease_seconds=30, clock=clock)
    q.claim_due(AT, 1)  # registers: the lease runs 30 s from now
    (worker,) = lease_of(engine)
    assert lease_of(engine) == {worker: (WALL, WALL + timedelta(seconds=30))}
    clock.now = WALL + timedelta(seconds=9.9)  # under a third: no write
    q.claim_due(AT, 1)
    assert lease_of(engine)[worker] == (WALL, WALL + timedelta(seconds=30))
    clock.now = WALL + timedelta(seconds=10)  # exactly a third: renewed
    q.claim_due(AT, 1)
    renewed = WALL + timedelta(seconds=10)
    assert lease_of(engine)[worker] == (renewed, renewed + timedelta(seconds=30))
    # The third is counted from that renewal, not from the registration: no write yet.
    clock.now = renewed + timedelta(seconds=9.9)
    q.claim_due(AT, 1)
    assert lease_of(engine)[worker] == (renewed, renewed + timedelta(seconds=30))
    # Settling renews too (a long pass needs no heartbeat thread), on the same rule.
    clock.now = renewed + timedelta(seconds=10)
    q.settle([], now=AT)
    assert lease_of(engine)[worker] == (clock.now, clock.now + timedelta(seconds=30))
    q.close()


def test_a_heartbeat_renews_at_once_and_before_any_claim_registers_nothing(engine, timetable):
    subscribe(engine, timetable, SLUG, person("p@example.com", AT))
    clock = Clock()
    q = SqlDeliveryQueue(engine, lambda slug: timetable, lease_seconds=60, clock=clock)
    q.heartbeat()
    assert lease_of(engine) == {}
    q.claim_due(AT, 1)
    clock.now = beat = WALL + timedelta(seconds=1)
    q.heartbeat()
    assert list(lease_of(engine).values()) == [(beat, beat + timedelta(seconds=60))]
    clock.now = beat + timedelta(seconds=19)  # within a third of the heartbeat: no renewal
    q.claim_due(AT, 1)
    assert list(lease_of(engine).values()) == [(beat, beat + timedelta(seconds=60))]
    q.close()
    assert lease_of(engine) == {}  # the lease ends with the worker
    assert q.worker_id is None


def test_recover_hands_claims_back_and_makes_rows_in_flight_ambiguous(engine, timetable):
    for n in range(6):
        subscribe(engine, timetable, SLUG, person(f"p{n}@example.com", AT))
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    a, b, c, d = q.claim_due(AT, 4)
    q.settle([], attempt=[b.delivery_id, d.delivery_id], now=AT)  # b, d went to the sender
    q.mark_sent(c.delivery_id, message_id="<c@x>", sent_at=AT)
    q.mark_ambiguous(d.delivery_id, "lost after DATA")
    # Another worker holds the other two rows: one claimed, one being sent.
    other = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    e, f = other.claim_due(AT, 4)
    other.settle([], attempt=[f.delivery_id], now=AT)
    q.recover()
    assert status_of(engine, a.delivery_id) == ("scheduled", None, None)
    assert status_of(engine, b.delivery_id) == (
        "ambiguous",
        q.worker_id,
        "no outcome was recorded",
    )
    assert status_of(engine, c.delivery_id) == ("sent", None, None)
    assert status_of(engine, d.delivery_id) == ("ambiguous", q.worker_id, "lost after DATA")
    assert status_of(engine, e.delivery_id) == ("claimed", other.worker_id, None)
    assert status_of(engine, f.delivery_id) == ("sending", other.worker_id, None)
    assert len(lease_of(engine)) == 2  # recover alone keeps the lease
    q.close()
    assert list(lease_of(engine)) == [other.worker_id]
    other.close()


def test_recording_an_outcome_for_a_row_not_being_sent_names_its_status(engine, timetable):
    subscribe(engine, timetable, SLUG, person("p@example.com", AT))
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    with pytest.raises(DeliveryStateError, match=r"^nothing was claimed by this worker$"):
        q.settle([], now=AT)
    with pytest.raises(DeliveryStateError, match=r"^delivery 1 is not being sent \(status: sch"):
        q.mark_failed(1, "x")  # before any claim
    (claimed,) = q.claim_due(AT, 1)
    q.mark_failed(claimed.delivery_id, "550 no")
    with pytest.raises(DeliveryStateError, match=r"is not being sent \(status: failed\)$"):
        q.mark_sent(claimed.delivery_id, message_id="<x@x>", sent_at=AT)
    with pytest.raises(DeliveryStateError, match=r"^delivery 999 .*\(status: missing\)$"):
        q.mark_ambiguous(999, "x")
    q.release([])  # nothing to hand back: no error
    q.close()


def test_releasing_before_any_claim_changes_nothing(engine, timetable):
    subscribe(engine, timetable, SLUG, person("p@example.com", AT))
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    q.release([1])
    assert status_of(engine, 1) == ("scheduled", None, None)
    assert lease_of(engine) == {}  # no worker registered by it
    q.close()


def _deactivate(engine: Engine, emails: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Subscriber).where(Subscriber.email.in_(emails)).values(status="unsubscribed")
        )


def test_a_claim_reads_past_cancelled_rows_instead_of_coming_back_empty(engine, timetable):
    # Three inactive subscribers' rows are due first: a claim of one reads on and
    # returns the active subscriber's row instead of "nothing due".
    for n in range(3):
        subscribe(engine, timetable, SLUG, person(f"gone{n}@example.com", AT))
    subscribe(engine, timetable, SLUG, person("ada@example.com", AT + timedelta(minutes=1)))
    _deactivate(engine, [f"gone{n}@example.com" for n in range(3)])
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    claimed = q.claim_due(AT + timedelta(minutes=1), 1)
    assert [c.email for c in claimed] == ["ada@example.com"]
    q.close()


def test_a_claim_gives_up_reading_after_four_short_reads(engine, timetable):
    # Bounded: four reads of one row each, all cancelled; the fifth row waits for the next
    # claim (the next pass), which finds it.
    for n in range(4):
        subscribe(engine, timetable, SLUG, person(f"gone{n}@example.com", AT))
    subscribe(engine, timetable, SLUG, person("ada@example.com", AT + timedelta(minutes=1)))
    _deactivate(engine, [f"gone{n}@example.com" for n in range(4)])
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    now = AT + timedelta(minutes=1)
    assert q.claim_due(now, 1) == []
    assert [c.email for c in q.claim_due(now, 1)] == ["ada@example.com"]
    q.close()


def test_held_steps_are_left_unclaimed_and_listed(engine, timetable):
    subscribe(engine, timetable, SLUG, person("p@example.com", AT))
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    first = timetable.steps[0].id
    assert first in q.scheduled_steps()[SLUG]
    assert len(q.scheduled_steps()[SLUG]) == 6
    assert q.schedule_version() == 0  # no revision applied yet
    q.hold([(SLUG, first)])
    assert q.claim_due(AT + timedelta(days=30), 10) == []  # step 1 held: nothing else may go
    q.hold([(SLUG, first)])  # the same again: still held
    assert q.claim_due(AT + timedelta(days=30), 10) == []
    q.hold([])
    (claimed,) = q.claim_due(AT + timedelta(days=30), 10)
    assert claimed.step_id == first
    q.close()


def test_every_claimed_subscriber_has_a_public_key(engine, timetable):
    subscribe(engine, timetable, SLUG, person("old@example.com", AT))
    subscribe(engine, timetable, SLUG, person("new@example.com", AT))
    with engine.begin() as conn:  # rows from before public keys existed
        conn.execute(update(Subscriber).values(public_key=None))
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    claimed = {c.email: c.public_key for c in q.claim_due(AT, 10)}
    with engine.connect() as conn:
        stored = dict(conn.execute(select(Subscriber.email, Subscriber.public_key)).all())
    assert claimed == stored and len(set(stored.values())) == 2
    assert all(key and len(key) >= 16 for key in stored.values())
    q.close()


def test_holding_a_step_holds_it_in_that_campaign_only(engine, timetable):
    subscribe(engine, timetable, SLUG, person("p@example.com", AT))
    subscribe(engine, timetable, "second", person("q@example.com", AT))  # same step ids
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    first, second = (rule.id for rule in timetable.steps[:2])
    q.hold([(SLUG, first)])
    assert [(c.campaign, c.email) for c in q.claim_due(AT, 10)] == [("second", "q@example.com")]
    q.hold([(SLUG, second)])  # a later step held: this campaign's first step goes
    assert [(c.campaign, c.step_id) for c in q.claim_due(AT, 10)] == [(SLUG, first)]
    q.close()


def test_the_schedule_version_is_the_newest_applied_revision(engine, timetable):
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    assert q.schedule_version() == 0
    with engine.begin() as conn:
        for _ in range(2):
            conn.execute(
                insert(CampaignRevision).values(
                    campaign=SLUG, applied_at=WALL, summary="", state={}
                )
            )
        newest = conn.scalar(select(func.max(CampaignRevision.id)))
    assert newest is not None and q.schedule_version() == newest
    q.close()


def test_mark_sent_keeps_the_ledger_and_skips_completion_when_told(engine, timetable):
    subscribe(engine, timetable, SLUG, person("p@example.com", AT))
    with engine.begin() as conn:  # every later step is done: only the first is left
        conn.execute(update(Delivery).where(Delivery.step > 1).values(status="sent"))
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    (claimed,) = q.claim_due(AT, 1)
    q.mark_sent(
        claimed.delivery_id,
        message_id="<m@x>",
        sent_at=AT,
        reply="250 ok",
        last_step=False,  # the caller knows this is not the sequence's end
        subject="Reason 1 of 6",
        body_digest="ab" * 32,
        campaign_commit="0123abcd-dirty",
    )
    with engine.connect() as conn:
        row = conn.execute(
            select(
                Delivery.subject, Delivery.body_digest, Delivery.campaign_commit, Delivery.reply
            ).where(Delivery.id == claimed.delivery_id)
        ).one()
        enrolment = conn.scalar(select(Enrollment.status))
    assert tuple(row) == ("Reason 1 of 6", "ab" * 32, "0123abcd-dirty", "250 ok")
    assert enrolment == "active"
    q.close()


def test_a_first_attempt_is_stamped_at_the_passs_instant_in_any_zone(engine, timetable):
    subscribe(engine, timetable, SLUG, person("p@example.com", AT))
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    (claimed,) = q.claim_due(AT, 1)
    q.settle([], attempt=[claimed.delivery_id], now=AT)  # AT is Los Angeles time
    with engine.connect() as conn:
        stamped = conn.scalar(
            select(Delivery.first_attempt_at).where(Delivery.id == claimed.delivery_id)
        )
    assert stamped.replace(tzinfo=UTC) == AT.astimezone(UTC)
    q.close()


def test_a_claim_cancels_rows_of_suppressed_addresses_and_ended_enrollments(engine, timetable):
    for name in ("suppressed", "ended", "ada"):
        subscribe(engine, timetable, SLUG, person(f"{name}@example.com", AT))
    add_suppression(engine, "suppressed@example.com", "asked by phone", now=WALL)
    with engine.begin() as conn:  # the subscriber is active, this enrollment is not
        conn.execute(
            update(Enrollment)
            .where(
                Enrollment.subscriber_id
                == select(Subscriber.id)
                .where(Subscriber.email == "ended@example.com")
                .scalar_subquery()
            )
            .values(status="completed")
        )
        # Whatever suppressing did to the rows, the claim must check again: a row put back.
        conn.execute(update(Delivery).where(Delivery.step == 1).values(status="scheduled"))
    q = SqlDeliveryQueue(engine, lambda slug: timetable, clock=Clock())
    assert [c.email for c in q.claim_due(AT, 10)] == ["ada@example.com"]
    with engine.connect() as conn:
        first = dict(
            conn.execute(
                select(Subscriber.email, Delivery.status)
                .join(Enrollment, Enrollment.subscriber_id == Subscriber.id)
                .join(Delivery, Delivery.enrollment_id == Enrollment.id)
                .where(Delivery.step == 1)
            ).all()
        )
    assert first == {
        "suppressed@example.com": "cancelled",
        "ended@example.com": "cancelled",
        "ada@example.com": "claimed",
    }
    q.close()
