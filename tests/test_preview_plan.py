"""The preview's campaign page shows the pending plan when the database has live enrollments."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import lxml.html
from edit_support import SLUG, remove_step
from sqlalchemy import Engine
from starlette.testclient import TestClient

from dripline.campaign import load_campaign
from dripline.plan import campaign_state, ensure_baseline
from dripline.preview import Project, create_app
from dripline.store import NewSubscriber, normalize_email, subscribe
from dripline.timetable import Timetable

BASE_URL = "http://127.0.0.1:8000"
NOW = datetime(2026, 3, 5, 18, tzinfo=UTC)


def campaign_page(project: Path, database_url: str | None) -> lxml.html.HtmlElement:
    preview = Project(project, base_url=BASE_URL, clock=lambda: NOW, database_url=database_url)
    client = TestClient(
        create_app(preview, port=8025, watch=False), base_url="http://127.0.0.1:8025"
    )
    response = client.get(f"/campaigns/{SLUG}")
    assert response.status_code == 200, response.text[:2000]
    return lxml.html.fromstring(response.text)


def enroll(engine: Engine, project: Path) -> None:
    campaign = load_campaign(project / "campaigns" / SLUG)
    person = NewSubscriber(normalize_email("live@example.com"), subscribed_at=NOW)
    subscribe(engine, Timetable.of(campaign), SLUG, person, now=NOW)
    state = campaign_state(campaign, project / "templates", BASE_URL)
    ensure_baseline(engine, SLUG, state, NOW)


def test_pending_plan_shown_above_the_timeline(project: Path, engine: Engine, db_url: str):
    # No database, or one without people in the campaign: no plan section at all.
    assert not campaign_page(project, None).cssselect(".pending-plan")
    assert not campaign_page(project, db_url).cssselect(".pending-plan")
    enroll(engine, project)
    unchanged = campaign_page(project, db_url).cssselect(".pending-plan")
    assert "No pending changes" in unchanged[0].text_content()

    remove_step(project, "neuroplasticity")
    page = campaign_page(project, db_url)
    (section,) = page.cssselect(".pending-plan")
    plan = section.cssselect("pre.plan")[0].text_content()
    assert "- neuroplasticity: 1 scheduled delivery(ies) will be cancelled" in plan
    assert f"dripline apply {SLUG}" in section.text_content()
    # It comes before the timeline on the page.
    headings = [h.get("id") for h in page.cssselect("h2")]
    assert headings.index("plan-heading") < headings.index("timeline-heading")


def test_a_missing_sqlite_file_is_not_created(project: Path, tmp_path: Path):
    missing = tmp_path / "nowhere.db"
    assert not campaign_page(project, f"sqlite:///{missing}").cssselect(".pending-plan")
    assert not missing.exists()
