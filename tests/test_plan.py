"""dripline.plan against a real store: plans without a recorded revision, and backfill."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from edit_support import SLUG, insert_step, remove_step
from sqlalchemy import Engine, select

from dripline.campaign import load_campaign
from dripline.plan import apply_campaign, campaign_state, ensure_baseline, plan_campaign
from dripline.store import (
    Delivery,
    Enrollment,
    NewSubscriber,
    normalize_email,
    read_transaction,
    subscribe,
    write_transaction,
)
from dripline.timetable import Timetable

BASE_URL = "http://127.0.0.1:8000"
MONDAY = datetime(2026, 3, 2, 16, tzinfo=UTC)
_D = Delivery.__table__
_E = Enrollment.__table__


def state_of(project: Path) -> dict:
    campaign = load_campaign(project / "campaigns" / SLUG)
    return campaign_state(campaign, project / "templates", BASE_URL)


def enroll(engine: Engine, project: Path, address: str, at: datetime = MONDAY) -> None:
    campaign = load_campaign(project / "campaigns" / SLUG)
    person = NewSubscriber(normalize_email(address), timezone="UTC", subscribed_at=at)
    subscribe(engine, Timetable.of(campaign), SLUG, person, now=at)


def mark_sent(engine: Engine, address_step_ids: list[str], at: datetime) -> None:
    """What a dispatcher would have recorded: these steps went out (of every enrollment)."""
    with write_transaction(engine) as conn:
        conn.execute(
            _D.update()
            .where(_D.c.step_id.in_(address_step_ids))
            .values(status="sent", sent_at=at.replace(tzinfo=None))
        )


def statuses(engine: Engine, step_id: str) -> list[str]:
    with read_transaction(engine) as conn:
        return sorted(conn.scalars(select(_D.c.status).where(_D.c.step_id == step_id)))


def test_without_a_recorded_revision_the_deliveries_are_the_baseline(engine: Engine, project: Path):
    enroll(engine, project, "a@example.com")  # as a database from before revisions: no baseline
    assert not plan_campaign(engine, SLUG, state_of(project), MONDAY).changes
    remove_step(project, "holistic-health")
    plan = plan_campaign(engine, SLUG, state_of(project), MONDAY)
    assert [(r.id, r.cancelled) for r in plan.removed] == [("holistic-health", 1)]
    assert plan.added == [] and plan.content == []  # nothing to diff against: not guessed
    apply_campaign(engine, SLUG, state_of(project), MONDAY)
    assert statuses(engine, "holistic-health") == ["cancelled"]
    assert not plan_campaign(engine, SLUG, state_of(project), MONDAY).changes


def test_backfill_reaches_those_past_it_once(engine: Engine, project: Path):
    enroll(engine, project, "past@example.com")
    ensure_baseline(engine, SLUG, state_of(project), MONDAY)
    mark_sent(engine, ["rapid-relief", "treatment-resistant"], MONDAY)
    later = datetime(2026, 3, 4, 16, tzinfo=UTC)
    enroll(engine, project, "fresh@example.com", later)
    insert_step(
        project, 2, "extra", 'subject = "Extra"\npreheader = "x"\nday = 1\nbackfill = true', "Hi."
    )
    now = datetime(2026, 3, 5, 18, tzinfo=UTC)
    plan = plan_campaign(engine, SLUG, state_of(project), now)
    (added,) = plan.added
    # Both get it, and one of them (past@) is already past its position: the plan says so.
    assert (added.id, added.backfill, added.enrollments, added.past) == ("extra", True, 2, 1)
    assert "extra (new step 2): 2 enrollment(s) get it, 1 of them already past it" in "\n".join(
        plan.lines()
    )
    apply_campaign(engine, SLUG, state_of(project), now)
    with read_transaction(engine) as conn:
        rows = conn.execute(
            select(_D.c.enrollment_id, _D.c.step, _D.c.due_at).where(_D.c.step_id == "extra")
        ).all()
        positions = dict(
            conn.execute(
                select(_D.c.step_id, _D.c.step).where(_D.c.enrollment_id == rows[0].enrollment_id)
            ).all()
        )
    assert len(rows) == 2 and {r.step for r in rows} == {2}
    # Past it: due at once (they already had the steps around it), never before now.
    assert min(r.due_at for r in rows) >= now.replace(tzinfo=None)
    assert positions["treatment-resistant"] == 3 and positions["other-therapies"] == 7
    # Applying again changes nothing: nobody gets it twice.
    again = apply_campaign(engine, SLUG, state_of(project), now)
    assert not again.changes and statuses(engine, "extra") == ["scheduled", "scheduled"]


def test_without_a_revision_a_renamed_file_at_the_same_position_is_the_same_step(
    engine: Engine, project: Path
):
    enroll(engine, project, "a@example.com")  # no baseline: the deliveries are all there is
    mark_sent(engine, ["rapid-relief", "treatment-resistant"], MONDAY)
    folder = project / "campaigns" / SLUG
    (folder / "02-treatment-resistant.md").rename(folder / "02-high-efficacy.md")
    plan = plan_campaign(engine, SLUG, state_of(project), MONDAY)
    assert plan.added == [] and plan.removed == []
    assert plan.retimed == [] and plan.content == []  # only the name changed
    (renamed,) = plan.renamed
    assert (renamed.old, renamed.new, renamed.reason, renamed.received) == (
        "treatment-resistant",
        "high-efficacy",
        "same position",
        1,
    )
    apply_campaign(engine, SLUG, state_of(project), MONDAY)
    assert statuses(engine, "high-efficacy") == ["sent"]
    assert statuses(engine, "treatment-resistant") == []
