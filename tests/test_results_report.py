"""`dripline report`: numbers checked against a database built by real sends (`dripline
run` to an SMTP server, clicks and opens through the served app, a bounce, an
unsubscribe, a goal event), and the HTML report opened in Chromium with its two charts."""

from __future__ import annotations

import io
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lxml.html
import pytest
from results_support import (
    GOAL,
    SLUG,
    cli,
    env_for,
    landing_page,
    links,
    parse,
    parts,
    run_once,
    subscribe,
    track,
)
from smtp_servers import FaultyHandler, RecordingHandler, running_server
from starlette.testclient import TestClient

from dripline.results import p_text
from dripline.serve import create_app
from dripline.settings import load_settings
from dripline.store import HARD, BounceReport, open_store, record_bounce

T0 = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)  # Thursday
BASE = "https://news.example.com"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0"
PEOPLE = ("clicker", "scanned", "quick", "bouncer", "leaver")


@pytest.fixture
def fixture_db(project: Path) -> dict:
    """Five people sent step 1, then what each did; step 2 to those still in."""
    with landing_page() as landing:
        track(project, landing, opens=True)
        env = env_for(project, BASE)
        for person in PEOPLE:
            subscribe(env, f"{person}@example.com", T0)
        handler = RecordingHandler()
        with running_server(handler) as server:
            sender = f"smtp://127.0.0.1:{server.port}"
            run_once(env, sender, T0 + timedelta(hours=1))
            mail = {r.rcpt_tos[0]: parse(r.data) for r in handler.received}
            # The pass ran on a clock set back to T0; the relay's acceptance (wall clock)
            # is put on that clock too, so the clicks below are timed against it.
            with sqlite3.connect(project / "dripline.db") as db:
                db.execute("UPDATE deliveries SET accepted_at = sent_at WHERE status = 'sent'")
            # Opens on: one 1x1 image in the HTML part, nothing in the text part.
            text, html = parts(mail["clicker@example.com"])
            assert len(links(html, BASE, "o")) == 1 and links(text, BASE, "o") == []
            (pixel,) = re.findall(r"<img [^>]*/o/[^>]*>", html)
            assert 'alt=""' in pixel and "width:1px" in pixel
            settings = load_settings(environ=env)
            clock = {"now": T0 + timedelta(hours=2)}
            with TestClient(create_app(settings, clock=lambda: clock["now"])) as client:

                def hit(person: str, kind: str, agent: str = DESKTOP) -> int:
                    text, html = parts(mail[f"{person}@example.com"])
                    url = links(html if kind == "o" else text, BASE, kind)[0]
                    path = url.removeprefix(BASE)
                    answer = client.get(path, headers={"User-Agent": agent}, follow_redirects=False)
                    return answer.status_code

                assert hit("clicker", "c") == 302
                assert hit("clicker", "c") == 302  # twice: one person, one unique click
                assert hit("clicker", "o") == 200
                pixel = client.get(links(html, BASE, "o")[0].removeprefix(BASE))
                assert pixel.headers["content-type"] == "image/gif" and len(pixel.content) < 100
                assert (
                    client.get(links(html, BASE, "o")[0].removeprefix(BASE) + "x").status_code
                    == 404
                )
                assert hit("scanned", "c", "Mozilla/5.0 (compatible; Barracuda Sentinel)") == 302
                clock["now"] = T0 + timedelta(hours=1, seconds=3)  # 3 s after it was sent
                assert hit("quick", "c") == 302
            engine = open_store(env["DRIPLINE_DATABASE_URL"])
            bounced = record_bounce(
                engine,
                BounceReport(HARD, "mailbox", message_id=mail["bouncer@example.com"]["Message-ID"]),
                now=T0 + timedelta(hours=5),
            )
            engine.dispose()
            assert bounced.action == "bounced"
            cli(env, "unsubscribe", "leaver@example.com")
            cli(
                env,
                "event",
                "clicker@example.com",
                GOAL,
                "--at",
                (T0 + timedelta(hours=3)).isoformat(),
            )
            run_once(env, sender, T0 + timedelta(days=30))
        assert len(handler.received) == 7
        yield {"env": env, "project": project}


def _report(env: dict, *args: str) -> dict:
    return json.loads(cli(env, "report", SLUG, "--json", *args))


def test_report_numbers_match_what_happened(fixture_db) -> None:
    data = _report(fixture_db["env"])
    first, second, *rest = data["steps"]
    assert first == {
        "step": "rapid-relief",
        "number": 1,
        "subject": "Reason 1 of 6: Rapid relief from symptoms",
        "sent": 5,
        "skipped": 0,
        "delivered": 4,
        "bounces": 1,
        "complaints": 0,
        "clicks": 1,
        "click_rate": 0.25,
        "machine_clicks": 2,
        "opens": 1,
        "unsubscribes": 1,
        "conversions": 1,
        "experiment": None,  # one subject: no A/B results
        "ambiguous": 0,
        "unclassified_clicks": 0,
    }
    assert (second["step"], second["sent"], second["delivered"]) == ("treatment-resistant", 2, 2)
    assert second["clicks"] == second["conversions"] == second["unsubscribes"] == 0
    assert all(step["sent"] == 0 for step in rest) and len(rest) == 4
    assert data["totals"] == {
        "enrolled": 5,
        "sent": 7,
        "skipped": 0,
        "delivered": 6,
        "clicks": 1,
        "machine_clicks": 2,
        "unsubscribes": 1,
        "bounces": 1,
        "conversions": 1,
        "conversion_rate": 0.2,
        "ambiguous": 0,
        "unclassified_clicks": 0,
        "opens": 1,
        "converted_before_sending": 0,
    }
    later = (T0 + timedelta(days=30)).date().isoformat()
    assert data["sends_per_day"] == [
        {"date": T0.date().isoformat(), "sent": 5},
        {"date": later, "sent": 2},
    ]
    assert data["time_to_conversion"] == {"conversions": 1, "median_hours": 3.0, "mean_hours": 3.0}
    assert data["tracking"] == {"clicks": True, "opens": True} and data["goal"] == GOAL
    assert "unreliable" in data["notes"]["opens"]


def test_since_keeps_only_later_messages(fixture_db) -> None:
    since = (T0 + timedelta(days=2)).date().isoformat()
    data = _report(fixture_db["env"], "--since", since)
    assert data["since"] == since
    assert [s["sent"] for s in data["steps"]][:2] == [0, 2]
    assert data["totals"]["conversions"] == 0 and data["sends_per_day"][0]["sent"] == 2
    # Nobody enrolled in the window: the rate is of no one, not of all-time enrollments.
    assert (data["totals"]["enrolled"], data["totals"]["conversion_rate"]) == (0, 0.0)
    text = cli(fixture_db["env"], "report", SLUG, "--since", since)
    assert f"since {since}: 0 enrolled (0.0% of them converted), 0 converted" in text
    html = fixture_db["project"] / "since.html"
    cli(fixture_db["env"], "report", SLUG, "--since", since, "--out", str(html))
    summary = " ".join(lxml.html.parse(str(html)).xpath("string(//section/p[1])").split())
    assert "2 delivered, 0 people clicked, 0 converted" in summary
    bad = cli(fixture_db["env"], "report", SLUG, "--since", "last week", code=1)
    assert "Error: --since: not a date" in bad


def test_the_html_report_shows_two_charts_offline(fixture_db, browser, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "report.html"
    printed = cli(fixture_db["env"], "report", SLUG, "--out", str(out))
    assert f"Report written to {out}" in printed
    html = out.read_text(encoding="utf-8")
    assert "<script" not in html and "http://" not in html.split("<svg", 1)[0].lower()
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri())
    assert requests == [out.as_uri()]  # nothing fetched: self-contained
    assert "Opens (unreliable)" in page.locator("table").inner_text()
    summary = " ".join(page.locator(".dripline-report > p").first.inner_text().split())
    assert "6 delivered, 1 person clicked, 1 converted" in summary
    # The funnel's conversions bar is green; the sends-per-day bars are dark blue.
    for chart, colour in (
        ("#funnel-chart svg", (46, 125, 50)),
        ("#sends-chart svg", (31, 95, 139)),
    ):
        element = page.locator(chart)
        box = element.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 150, chart
        image = Image.open(io.BytesIO(element.screenshot())).convert("RGB")
        raw = image.tobytes()
        pixels = [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]
        drawn = sum(1 for p in pixels if sum(p) < 600)  # not background white
        assert drawn > len(pixels) // 50, chart  # bars and axes, not an empty box
        bars = sum(1 for p in pixels if max(abs(a - b) for a, b in zip(p, colour, strict=True)) < 8)
        assert bars > 300, chart
    page.close()


def test_the_preview_shows_the_same_results(fixture_db) -> None:
    from dripline.preview import Project, create_app

    project, env = fixture_db["project"], fixture_db["env"]
    preview = Project(
        project,
        base_url=BASE,
        clock=lambda: T0 + timedelta(days=31),
        database_url=env["DRIPLINE_DATABASE_URL"],
    )
    client = TestClient(
        create_app(preview, port=8026, watch=False), base_url="http://127.0.0.1:8026"
    )
    page = lxml.html.fromstring(client.get(f"/campaigns/{SLUG}").text)
    (section,) = page.cssselect(".results")
    first = [cell.text_content().strip() for cell in section.cssselect("tbody tr")[0][1:]]
    # sent, delivered, people's clicks, rate, machine, unclassified, opens, unsubscribes,
    # bounces, conversions, ambiguous
    assert first == ["5", "4", "1", "25.0%", "2", "0", "1", "1", "1", "1", "0"]
    assert "1 person clicked" in " ".join(section.text_content().split())
    charts = section.cssselect("figure img")
    assert len(charts) == 2
    assert all(img.get("src").startswith("data:image/svg+xml;base64,") for img in charts)
    assert not section.cssselect("[style], style, script")  # the preview's CSP allows none
    # Without a database the section is not there.
    bare = Project(project, base_url=BASE, clock=lambda: T0)
    client = TestClient(create_app(bare, port=8026, watch=False), base_url="http://127.0.0.1:8026")
    assert not lxml.html.fromstring(client.get(f"/campaigns/{SLUG}").text).cssselect(".results")


def test_tracking_adds_no_check_findings(project: Path) -> None:
    env = env_for(project, BASE)
    before = cli(env, "check", SLUG)
    toml = project / "campaigns" / SLUG / "campaign.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8")
        + '\n[tracking]\nclicks = true\nopens = true\n\n[goal]\nevent = "booked-consult"\n',
        encoding="utf-8",
    )
    after = cli(env, "check", SLUG)
    assert after.splitlines()[-1] == before.splitlines()[-1]  # same errors and warnings
    toml.write_text(toml.read_text(encoding="utf-8") + "\n[tracking.extra]\n", encoding="utf-8")
    bad = cli(env, "check", SLUG, code=1)
    assert "campaign.toml" in bad and "Traceback" not in bad


def test_report_and_event_refuse_a_missing_or_foreign_database(project: Path) -> None:
    env = env_for(project, "http://127.0.0.1:9")
    missing = project / "missing.db"
    for args in (("report", SLUG), ("event", "ada@example.com", "booked-consult")):
        out = cli({**env, "DRIPLINE_DATABASE_URL": f"sqlite:///{missing}"}, *args, code=1)
        assert out.startswith(f"Error: no database at {missing}") and "Traceback" not in out
        assert not missing.exists()
    foreign = project / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE foo (x)")
    for args in (("report", SLUG), ("event", "ada@example.com", "booked-consult")):
        out = cli({**env, "DRIPLINE_DATABASE_URL": f"sqlite:///{foreign}"}, *args, code=1)
        assert "is not a dripline database" in out and "Traceback" not in out
    with sqlite3.connect(foreign) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ["foo"]


def test_ambiguous_sends_unclassified_clicks_and_unsubscribed_converts_are_shown(
    project: Path,
) -> None:
    """A relay that cuts the connection after the data: that send is ambiguous and the
    report says so per step. A click an hour on from an agent no list knows counts as a
    person's and is shown as unclassified. A person who unsubscribed and then converted is
    both an unsubscribe and a conversion."""
    with landing_page() as landing:
        track(project, landing)
        env = env_for(project, BASE)
        for address in ("drop-in-data@example.com", "pat@example.com"):
            subscribe(env, address, T0)
        handler = FaultyHandler()
        with running_server(handler) as server:
            run_once(env, f"smtp://127.0.0.1:{server.port}", T0 + timedelta(hours=1))
        assert {r.rcpt_tos[0] for r in handler.received} == {
            "drop-in-data@example.com",
            "pat@example.com",
        }
        mail = {r.rcpt_tos[0]: parse(r.data) for r in handler.received}
        with sqlite3.connect(project / "dripline.db") as db:
            db.execute("UPDATE deliveries SET accepted_at = sent_at WHERE status = 'sent'")
        text, _ = parts(mail["pat@example.com"])
        path = links(text, BASE, "c")[0].removeprefix(BASE)
        app = create_app(load_settings(environ=env), clock=lambda: T0 + timedelta(hours=2))
        with TestClient(app, follow_redirects=False) as client:
            assert (
                client.get(
                    path, headers={"User-Agent": "Acme Mail/2.3 (iPhone; iOS 17.1)"}
                ).status_code
                == 302
            )
    cli(env, "unsubscribe", "pat@example.com")
    cli(env, "event", "pat@example.com", GOAL, "--at", (T0 + timedelta(hours=3)).isoformat())
    data = _report(env)
    first = data["steps"][0]
    assert (first["sent"], first["ambiguous"], first["clicks"]) == (1, 1, 1)
    assert (first["unclassified_clicks"], first["machine_clicks"]) == (1, 0)
    assert (first["unsubscribes"], first["conversions"]) == (1, 1)
    assert (data["totals"]["ambiguous"], data["totals"]["unclassified_clicks"]) == (1, 1)
    assert (data["totals"]["unsubscribes"], data["totals"]["conversions"]) == (1, 1)
    assert "maybe" in data["notes"]["ambiguous"]
    out = project / "report.html"
    cli(env, "report", SLUG, "--out", str(out))
    page = lxml.html.parse(str(out))
    heads = [" ".join(th.text_content().split()) for th in page.xpath("//thead//th")]
    row = [cell.text_content().strip() for cell in page.xpath("//tbody/tr[1]/td")]
    assert row[heads.index("Ambiguous (maybe sent)") - 1] == "1"
    assert row[heads.index("Unclassified (counted as people's)") - 1] == "1"
    text_report = cli(env, "report", SLUG)
    assert "1 ambiguous (maybe sent, in no column above): rapid-relief 1" in text_report
    assert "1 of the people's clicks came only from unclassified user agents" in text_report


@pytest.mark.parametrize(
    ("p_value", "shown"),
    [(3.5e-05, "p < 0.0001"), (0.0001, "p = 0.0001"), (0.0123, "p = 0.0123"), (1.0, "p = 1.0000")],
)
def test_a_winners_p_value_is_never_printed_as_zero(p_value, shown):
    """probe-18c LOW d: "p = 0.0000" reads as certainty; a tiny p-value is "p < 0.0001"."""
    assert p_text(p_value) == shown
