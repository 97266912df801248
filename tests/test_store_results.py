"""Results in the store on SQLite and PostgreSQL: stable link positions, clicks checked
against the delivery's campaign, goal events converting in one transaction, and the report's
per-step figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from results_support import SECRET, cli, env_for, track
from smtp_servers import RecordingHandler, running_server
from sqlalchemy import Engine, func, select, update
from starlette.testclient import TestClient

from dripline.campaign import Campaign
from dripline.dispatch import CampaignLibrary, Dispatcher
from dripline.runtime import sender_for, tracking_links_for, unsubscribe_link_maker
from dripline.serve import create_app
from dripline.settings import load_settings
from dripline.store import (
    Delivery,
    Enrollment,
    EventBeforeEnrollmentError,
    EventIdConflictError,
    GoalEvent,
    NewSubscriber,
    NotSubscribedError,
    SqlDeliveryQueue,
    Subscriber,
    link_positions,
    normalize_email,
    open_store,
    record_click,
    record_event,
    subscribe,
    write_transaction,
)
from dripline.store._results_models import Click
from dripline.store._results_report import campaign_results
from dripline.timetable import Timetable
from dripline.tokens import tracking_tokens

NOW = datetime(2026, 3, 5, 18, tzinfo=UTC)
SLUG = "ketamine-therapy"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


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


def test_a_goal_event_stops_claimed_deliveries_and_leaves_in_flight_ones(
    engine: Engine, campaign: Campaign
) -> None:
    ada = _enroll(engine, campaign, "ada@example.com")
    bob = _enroll(engine, campaign, "bob@example.com")
    timetable = Timetable.of(campaign)
    later = NOW + timedelta(days=1)
    queue = SqlDeliveryQueue(engine, lambda slug: timetable, clock=lambda: later)
    claimed = {c.delivery_id for c in queue.claim_due(later, 20)}
    assert claimed == {ada[0], bob[0]}
    queue.settle([], attempt=[bob[0]], now=later)  # bob's step 1 is with the sender
    goals = {SLUG: "booked-consult"}
    for address in ("ada@example.com", "bob@example.com"):
        done = record_event(engine, address, "booked-consult", at=later, now=later, goals=goals)
        assert done.converted == (SLUG,)
    # The dispatcher then moves ada's claimed row to 'sending': it is gone, not sent.
    assert queue.settle([], attempt=[ada[0]], now=later).attempting == frozenset()
    with write_transaction(engine) as conn:
        status = dict(conn.execute(select(Delivery.id, Delivery.status)).all())
    assert [status[i] for i in ada] == ["cancelled"] * len(ada)
    assert [status[i] for i in bob] == ["sending"] + ["cancelled"] * (len(bob) - 1)
    queue.close()  # hands back what it still holds: the cancelled row stays cancelled
    with write_transaction(engine) as conn:
        assert conn.scalar(select(Delivery.status).where(Delivery.id == ada[0])) == "cancelled"


def test_the_same_event_id_for_two_people_records_both(engine: Engine, campaign: Campaign) -> None:
    _enroll(engine, campaign, "ada@example.com")
    _enroll(engine, campaign, "bob@example.com")
    goals = {SLUG: "booked-consult"}
    at = NOW + timedelta(hours=1)
    shop = record_event(
        engine, "ada@example.com", "order", at=at, now=at, goals=goals, external_id="1"
    )
    booking = record_event(
        engine, "bob@example.com", "booked-consult", at=at, now=at, goals=goals, external_id="1"
    )
    assert not shop.duplicate and not booking.duplicate and booking.converted == (SLUG,)
    again = record_event(
        engine, "bob@example.com", "booked-consult", at=at, now=at, goals=goals, external_id="1"
    )
    assert again.duplicate
    with write_transaction(engine) as conn:
        events = conn.execute(select(GoalEvent.name, GoalEvent.external_id).order_by(GoalEvent.id))
        assert [tuple(e) for e in events] == [("order", "1"), ("booked-consult", "1")]
        statuses = conn.execute(select(Enrollment.status).order_by(Enrollment.id)).scalars().all()
    assert statuses == ["active", "converted"]


def test_since_takes_the_conversion_rate_over_the_people_enrolled_since(
    engine: Engine, campaign: Campaign
) -> None:
    _enroll(engine, campaign, "ada@example.com")
    _enroll(engine, campaign, "bob@example.com")
    with write_transaction(engine) as conn:  # bob enrolled ten days after ada
        bob = select(Subscriber.id).where(Subscriber.email == "bob@example.com")
        conn.execute(
            update(Enrollment)
            .where(Enrollment.subscriber_id == bob.scalar_subquery())
            .values(enrolled_at=(NOW + timedelta(days=10)).replace(tzinfo=None))
        )
    goals = {SLUG: "booked-consult"}
    at = NOW + timedelta(days=11)  # ada converts after bob enrolled; bob does not
    record_event(engine, "ada@example.com", "booked-consult", at=at, now=at, goals=goals)
    steps = [(s.id, s.subject) for s in campaign.steps]
    everything = campaign_results(engine, SLUG, steps)
    assert (everything.enrolled, everything.conversions, everything.conversion_rate) == (2, 1, 0.5)
    window = campaign_results(engine, SLUG, steps, since=NOW + timedelta(days=5))
    # One conversion in the window (ada's), but of the one person enrolled in it, none.
    assert (window.enrolled, window.conversions, window.conversion_rate) == (1, 1, 0.0)


def test_an_event_before_enrolling_is_refused(engine: Engine, campaign: Campaign) -> None:
    _enroll(engine, campaign, "ada@example.com")
    goals = {SLUG: "booked-consult"}
    early = NOW - timedelta(days=1)
    with pytest.raises(EventBeforeEnrollmentError, match=r"ada@example\.com enrolled at"):
        record_event(engine, "ada@example.com", "booked-consult", at=early, now=NOW, goals=goals)
    with write_transaction(engine) as conn:
        assert conn.scalar(select(func.count()).select_from(GoalEvent)) == 0
        assert conn.scalar(select(Enrollment.status)) == "active"
        statuses = set(conn.scalars(select(Delivery.status)))
    assert statuses == {"scheduled"}


class _SlowRelay(RecordingHandler):
    """A relay that takes ``seconds`` of the test's wall clock to accept each message."""

    def __init__(self, wall: list[datetime], seconds: float) -> None:
        super().__init__()
        self.wall, self.seconds = wall, seconds

    async def handle_DATA(self, server, session, envelope) -> str:
        self.wall[0] += timedelta(seconds=self.seconds)
        return await super().handle_DATA(server, session, envelope)


def test_a_scan_on_arrival_late_in_a_chunk_is_a_machine_click(
    project: Path, db_url: str, campaign: Campaign
) -> None:
    """One chunk of 20 through a relay taking 5 s a message: the last is accepted 100 s
    after the chunk was handed over. A gateway scanning it on arrival (2 s later) is a
    machine; a click 20 minutes later is a person's."""
    track(project, "http://127.0.0.1:9/landing")
    env = {**env_for(project, "https://news.example.com", db_url)}
    people = [f"p{i:02d}@example.com" for i in range(20)]
    table = project / "people.csv"
    table.write_text("email,name\n" + "".join(f"{a},Pat Doe\n" for a in people))
    cli(env, "import", str(table), "--campaign", SLUG)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    wall = [start]
    handler = _SlowRelay(wall, 5)
    engine = open_store(db_url)
    with running_server(handler) as server:
        settings = load_settings(
            environ={**env, "DRIPLINE_SENDER": f"smtp://127.0.0.1:{server.port}"}
        )
        timetable = Timetable.of(campaign)
        queue = SqlDeliveryQueue(engine, lambda slug: timetable, clock=lambda: wall[0])
        library = CampaignLibrary(settings.campaigns_dir, settings.templates_dir)
        with sender_for(settings) as sender:
            dispatcher = Dispatcher(
                queue,
                sender,
                library,
                unsubscribe_link_maker(settings),
                tracking=tracking_links_for(settings),
            )
            report = dispatcher.dispatch_due(start)
            dispatcher.close()
        queue.close()
    assert report.sent == len(people), report.summary()
    order = [r.rcpt_tos[0] for r in handler.received]
    with write_transaction(engine) as conn:
        rows = conn.execute(
            select(Delivery.id, Subscriber.email, Delivery.attempted_at, Delivery.accepted_at)
            .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
            .join(Subscriber, Subscriber.id == Enrollment.subscriber_id)
            .where(Delivery.status == "sent")
        ).all()
    by_email = {r.email: r for r in rows}
    last = by_email[order[-1]]
    # Each message has its own moment: 5 s apart, in the order the relay got them.
    accepted = [by_email[a].accepted_at for a in order]
    assert accepted == sorted(accepted) and len(set(accepted)) == len(people)
    assert last.accepted_at - last.attempted_at >= timedelta(seconds=95)
    arrival = last.accepted_at.replace(tzinfo=UTC)
    clicks = {"now": arrival + timedelta(seconds=2)}
    app = create_app(settings, clock=lambda: clicks["now"])
    tokens = tracking_tokens(SECRET)
    with TestClient(app, follow_redirects=False) as client:
        link = f"/c/{tokens.click(last.id, 0, SLUG)}"
        scan = client.get(link, headers={"User-Agent": DESKTOP})
        clicks["now"] = arrival + timedelta(minutes=20)
        person = client.get(link, headers={"User-Agent": DESKTOP})
    assert scan.status_code == person.status_code == 302
    with write_transaction(engine) as conn:
        machine = conn.scalars(select(Click.machine).order_by(Click.id)).all()
    engine.dispose()
    assert machine == [True, False]


def test_the_same_id_for_another_event_of_one_person_is_a_conflict(
    engine: Engine, campaign: Campaign
) -> None:
    _enroll(engine, campaign, "carol@example.com")
    goals = {SLUG: "booked-consult"}
    at = NOW + timedelta(hours=1)
    view = record_event(
        engine, "carol@example.com", "page-view", at=at, now=at, goals=goals, external_id="17"
    )
    assert not view.duplicate
    with pytest.raises(EventIdConflictError, match=r"'17' is already event 'page-view'"):
        record_event(
            engine,
            "carol@example.com",
            "booked-consult",
            at=at,
            now=at,
            goals=goals,
            external_id="17",
        )
    with write_transaction(engine) as conn:
        assert conn.scalar(select(func.count()).select_from(GoalEvent)) == 1
        assert conn.scalar(select(Enrollment.status)) == "active"
    # With its own id the goal is recorded and converts.
    done = record_event(
        engine,
        "carol@example.com",
        "booked-consult",
        at=at,
        now=at,
        goals=goals,
        external_id="B-17",
    )
    assert done.converted == (SLUG,)


def test_an_event_does_not_convert_a_campaign_joined_after_it(
    engine: Engine, campaign: Campaign
) -> None:
    """ada joined the campaign at NOW; a back-dated goal event before a second enrollment
    (same goal) converts the first only; the second's sequence goes on."""
    _enroll(engine, campaign, "ada@example.com")
    later = NOW + timedelta(days=2)
    person = NewSubscriber(normalize_email("ada@example.com"), subscribed_at=later)
    subscribe(engine, Timetable.of(campaign), "second", person, now=later)
    goals = {SLUG: "booked-consult", "second": "booked-consult"}
    at = NOW + timedelta(days=1)  # after the first enrollment, before the second
    done = record_event(engine, "ada@example.com", "booked-consult", at=at, now=later, goals=goals)
    assert done.converted == (SLUG,)
    with write_transaction(engine) as conn:
        rows = dict(conn.execute(select(Enrollment.campaign, Enrollment.status)).all())
        second = conn.scalars(
            select(Delivery.status)
            .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
            .where(Enrollment.campaign == "second")
        ).all()
    assert rows == {SLUG: "converted", "second": "active"}
    assert set(second) == {"scheduled"}


def test_a_back_dated_goal_arriving_second_moves_the_conversion_earlier(
    engine: Engine, campaign: Campaign
) -> None:
    _enroll(engine, campaign, "ada@example.com")
    goals = {SLUG: "booked-consult"}
    late, early = NOW + timedelta(hours=6), NOW + timedelta(hours=2)
    first = record_event(
        engine, "ada@example.com", "booked-consult", at=late, now=late, goals=goals
    )
    again = record_event(
        engine, "ada@example.com", "booked-consult", at=early, now=late, goals=goals
    )
    assert first.converted == (SLUG,) and again.converted == () and not again.duplicate
    with write_transaction(engine) as conn:
        converted_at = conn.scalar(select(Enrollment.converted_at))
    assert converted_at == early.replace(tzinfo=None)
    results = campaign_results(engine, SLUG, [(s.id, s.subject) for s in campaign.steps])
    assert results.conversion_hours == [2.0]


def test_a_conversion_before_any_message_is_in_the_total_and_said_so(
    engine: Engine, campaign: Campaign
) -> None:
    _enroll(engine, campaign, "ada@example.com")
    at = NOW + timedelta(minutes=30)
    record_event(
        engine, "ada@example.com", "booked-consult", at=at, now=at, goals={SLUG: "booked-consult"}
    )
    results = campaign_results(engine, SLUG, [(s.id, s.subject) for s in campaign.steps])
    assert results.conversions == 1 and results.total("conversions") == 0
    assert results.converted_before_sending == 1
