"""Results in the store on SQLite and PostgreSQL: stable link positions, clicks checked
against the delivery's campaign, goal events converting in one transaction, and the report's
per-step figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update

from dripline.campaign import Campaign
from dripline.store import (
    Delivery,
    Enrollment,
    NewSubscriber,
    NotSubscribedError,
    link_positions,
    normalize_email,
    record_click,
    record_event,
    subscribe,
    write_transaction,
)
from dripline.store._results_report import campaign_results
from dripline.timetable import Timetable

NOW = datetime(2026, 3, 5, 18, tzinfo=UTC)
SLUG = "ketamine-therapy"


def _enroll(engine: Engine, campaign: Campaign, address: str) -> list[int]:
    person = NewSubscriber(normalize_email(address), subscribed_at=NOW)
    subscribe(engine, Timetable.of(campaign), SLUG, person, now=NOW)
    with write_transaction(engine) as conn:
        rows = conn.execute(
            select(Delivery.id)
            .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
            .where(Enrollment.campaign == SLUG)
            .order_by(Delivery.id.desc())
            .limit(len(campaign.steps))
        ).all()
    return sorted(r[0] for r in rows)


def _mark_sent(engine: Engine, delivery_id: int, at: datetime) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(status="sent", sent_at=at.replace(tzinfo=None))
        )


def test_link_positions_only_grow(engine: Engine) -> None:
    first = link_positions(
        engine, SLUG, "rapid-relief", ["https://a.example/", "https://b.example/"]
    )
    assert first == [0, 1]
    # An edit: b kept, a gone, c new. Old positions stay; c is added after them.
    again = link_positions(
        engine, SLUG, "rapid-relief", ["https://b.example/", "https://c.example/"]
    )
    assert again == [1, 2]
    assert link_positions(engine, SLUG, "other-step", ["https://a.example/"]) == [0]


def test_a_click_is_recorded_only_for_its_own_campaign(engine: Engine, campaign: Campaign) -> None:
    deliveries = _enroll(engine, campaign, "ada@example.com")
    _mark_sent(engine, deliveries[0], NOW)
    link_positions(engine, SLUG, "rapid-relief", ["https://a.example/x?utm_source=d"])
    kwargs = {"user_agent_class": "browser", "now": NOW + timedelta(hours=1)}
    foreign = record_click(
        engine, deliveries[0], 0, names_campaign=lambda s: s == "other", **kwargs
    )
    assert foreign is None
    missing = record_click(engine, deliveries[0], 5, names_campaign=lambda s: True, **kwargs)
    assert missing is None
    hit = record_click(engine, deliveries[0], 0, names_campaign=lambda s: s == SLUG, **kwargs)
    assert hit is not None and hit.url == "https://a.example/x?utm_source=d" and not hit.machine
    results = campaign_results(engine, SLUG, [(s.id, s.subject) for s in campaign.steps])
    assert (results.steps[0].sent, results.steps[0].clicks, results.steps[0].click_rate) == (
        1,
        1,
        1.0,
    )


def test_a_goal_event_converts_and_cancels_in_one_go(engine: Engine, campaign: Campaign) -> None:
    deliveries = _enroll(engine, campaign, "ada@example.com")
    _mark_sent(engine, deliveries[0], NOW)
    goals = {SLUG: "booked-consult", "elsewhere": "other"}
    at = NOW + timedelta(hours=4)
    done = record_event(
        engine, "Ada@Example.com", "booked-consult", at=at, now=at, goals=goals, external_id="e-1"
    )
    assert done.converted == (SLUG,) and done.cancelled == len(campaign.steps) - 1
    replay = record_event(
        engine, "ada@example.com", "booked-consult", at=at, now=at, goals=goals, external_id="e-1"
    )
    assert replay.duplicate and replay.event_id is None
    with write_transaction(engine) as conn:
        statuses = [r[0] for r in conn.execute(select(Delivery.status).order_by(Delivery.step))]
        enrollment = conn.execute(select(Enrollment.status, Enrollment.converted_at)).one()
    assert statuses == ["sent"] + ["cancelled"] * (len(campaign.steps) - 1)
    assert enrollment[0] == "converted"
    results = campaign_results(engine, SLUG, [(s.id, s.subject) for s in campaign.steps])
    assert results.steps[0].conversions == 1 and results.conversion_hours == [4.0]
    with pytest.raises(NotSubscribedError):
        record_event(engine, "nobody@example.com", "booked-consult", at=at, now=at, goals=goals)
