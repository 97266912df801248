"""The preview's campaign page shows which steps each sample subscriber gets (``when``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import lxml.html
from starlette.testclient import TestClient

from dripline.preview import Project, create_app

PORT = 8025
STEP3 = "campaigns/ketamine-therapy/03-neuroplasticity.md"


def campaign_page(project: Path) -> lxml.html.HtmlElement:
    preview = Project(
        project,
        base_url="http://127.0.0.1:8000",
        clock=lambda: datetime(2026, 3, 5, 20, 0, tzinfo=ZoneInfo("America/Los_Angeles")),
    )
    client = TestClient(
        create_app(preview, port=PORT, watch=False), base_url=f"http://127.0.0.1:{PORT}"
    )
    response = client.get("/campaigns/ketamine-therapy")
    assert response.status_code == 200, response.text[:2000]
    return lxml.html.fromstring(response.text)


def test_who_gets_which_step_follows_each_sample_subscribers_attributes(project: Path):
    preview_toml = project / "campaigns" / "ketamine-therapy" / "preview.toml"
    text = preview_toml.read_text()
    # Maria is on the pro plan; the other samples have no plan at all.
    preview_toml.write_text(
        text.replace('first_name = "Maria"', 'first_name = "Maria"\nplan = "pro"')
    )
    step = project / STEP3
    step.write_text(
        step.read_text().replace(
            "+++\n", "+++\nwhen = \"subscriber.plan | default('') == 'pro'\"\n", 1
        )
    )
    rows = {
        " ".join(row.xpath("./th")[0].text_content().split()): [
            cell.text_content().strip() for cell in row.xpath("./td")
        ]
        for row in campaign_page(project).xpath("//table[@id='who-gets']/tbody/tr")
    }
    assert rows["Maria, Los Angeles"] == ["gets"] * 6
    assert rows["No first name on file"] == ["gets", "gets", "skipped", "gets", "gets", "gets"]
    assert len(rows) == 3


def test_without_conditions_there_is_no_table(project: Path):
    assert campaign_page(project).xpath("//table[@id='who-gets']") == []
