"""Tracked clicks and goal events end to end: `dripline run` to a real SMTP server, the
email read back, `dripline serve` as its own process, headless Chromium following the
link to a local page, and the database read afterwards."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from results_support import (
    API_TOKEN,
    GOAL,
    SECRET,
    SLUG,
    cli,
    env_for,
    free_port,
    landing_page,
    links,
    parse,
    parts,
    run_once,
    serving,
    subscribe,
    track,
)
from smtp_servers import RecordingHandler, running_server
from starlette.testclient import TestClient

from dripline.serve import create_app
from dripline.settings import load_settings
from dripline.tokens import tracking_tokens

DESKTOP = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36"
)


@pytest.fixture
def sent(project: Path) -> Iterator[dict]:
    """Two subscribers sent step 1 of a tracked campaign an hour ago, and serve running."""
    now = datetime.now(UTC).replace(microsecond=0)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with landing_page() as landing:
        track(project, landing)
        env = env_for(project, base)
        for person in ("ada", "bob"):
            subscribe(env, f"{person}@example.com", now - timedelta(hours=2))
        handler = RecordingHandler()
        with running_server(handler) as server:
            run_once(env, f"smtp://127.0.0.1:{server.port}", now - timedelta(hours=1))
        messages = {r.rcpt_tos[0]: parse(r.data) for r in handler.received}
        with serving(env, port):
            yield {"env": env, "base": base, "landing": landing, "messages": messages}


def _db(project: Path) -> sqlite3.Connection:
    db = sqlite3.connect(project / "dripline.db")
    db.row_factory = sqlite3.Row
    return db


def test_links_are_tracked_in_both_parts_and_the_unsubscribe_link_is_not(sent) -> None:
    base, landing = sent["base"], sent["landing"]
    text, html = parts(sent["messages"]["ada@example.com"])
    html_links, text_links = links(html, base, "c"), links(text, base, "c")
    assert len(html_links) == 2 and html_links == text_links  # the same tracked URLs
    assert links(html, base, "o") == []  # opens stay off unless asked for
    assert landing not in html.replace(">" + landing, "")  # no href to the page itself
    assert 'href="' + landing not in html
    # The unsubscribe link goes straight to /u/, in the body and in the header.
    assert len(links(html, base, "u")) == 1 and len(links(text, base, "u")) == 1
    header = sent["messages"]["ada@example.com"]["List-Unsubscribe"]
    assert f"{base}/u/" in header and "/c/" not in header
    # Each recipient has tokens of their own.
    other_text, _ = parts(sent["messages"]["bob@example.com"])
    assert not set(links(other_text, base, "c")) & set(text_links)


def test_a_person_following_the_link_lands_on_the_page_and_is_counted_once(
    sent, browser, project: Path
) -> None:
    text, _ = parts(sent["messages"]["ada@example.com"])
    link = links(text, sent["base"], "c")[0]
    context = browser.new_context(user_agent=DESKTOP)
    page = context.new_page()
    page.goto(link)
    landed = page.url
    shown = page.locator("#q").inner_text()
    context.close()
    assert landed.startswith(sent["landing"] + "?ref=email1&")
    assert "utm_source=dripline" in landed and "utm_campaign=ketamine-therapy" in landed
    assert shown == landed.removeprefix(sent["landing"].rsplit("/landing", 1)[0])
    with _db(project) as db:
        clicks = db.execute("SELECT * FROM clicks").fetchall()
        columns = {row[1] for row in db.execute("PRAGMA table_info(clicks)")}
    assert len(clicks) == 1
    assert clicks[0]["machine"] == 0 and clicks[0]["user_agent_class"] == "browser"
    assert clicks[0]["position"] == 0
    # Time and a class only: no address, no user-agent string.
    assert columns == {"id", "delivery_id", "position", "clicked_at", "user_agent_class", "machine"}


def test_scanners_and_headless_browsers_count_as_machine_clicks(sent, browser, project) -> None:
    text, _ = parts(sent["messages"]["bob@example.com"])
    link = links(text, sent["base"], "c")[1]
    scanner = httpx.get(link, headers={"User-Agent": "Mozilla/5.0 BingPreview/1.0b"})
    assert scanner.status_code == 302
    page = browser.new_page()  # Chromium's own headless user agent
    page.goto(link)
    assert "ref=more" in page.url
    page.close()
    with _db(project) as db:
        rows = db.execute("SELECT user_agent_class, machine FROM clicks ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [("scanner", 1), ("scanner", 1)]


def test_tampered_and_other_campaign_tokens_get_the_bad_link_page(sent, project) -> None:
    base = sent["base"]
    text, _ = parts(sent["messages"]["ada@example.com"])
    link = links(text, base, "c")[0]
    token = link.rsplit("/", 1)[1]
    bad_unsubscribe = httpx.get(f"{base}/u/{'A' * 40}")
    assert bad_unsubscribe.status_code == 404
    with _db(project) as db:
        delivery = db.execute("SELECT id FROM deliveries WHERE status = 'sent'").fetchone()["id"]
    tokens = tracking_tokens(SECRET)
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    attempts = [
        flipped,
        token + "A",
        tokens.click(delivery, 0, "another-campaign"),  # genuine, but not this campaign's
        tokens.click(delivery, 7, SLUG),  # no such link in the step
        tracking_tokens("some-other-secret-0123456789").click(delivery, 0, SLUG),
        "https:%2F%2Fevil.example%2F",
    ]
    for attempt in attempts:
        answer = httpx.get(f"{base}/c/{attempt}")
        assert answer.status_code == 404, attempt
        assert "location" not in answer.headers
        # Exactly what the same string gets as an unsubscribe token.
        assert answer.text == httpx.get(f"{base}/u/{attempt}").text
    assert "This link does not work" in bad_unsubscribe.text
    with _db(project) as db:
        assert db.execute("SELECT count(*) FROM clicks").fetchone()[0] == 0


def test_a_click_within_seconds_of_delivery_is_a_machine_click(sent, project) -> None:
    text, _ = parts(sent["messages"]["ada@example.com"])
    token = links(text, sent["base"], "c")[0].rsplit("/", 1)[1]
    with _db(project) as db:
        sent_at = datetime.fromisoformat(
            db.execute("SELECT sent_at FROM deliveries WHERE status = 'sent'").fetchone()[0]
        ).replace(tzinfo=UTC)
    settings = load_settings(environ=sent["env"])
    clock = {"now": sent_at + timedelta(seconds=3)}
    app = create_app(settings, clock=lambda: clock["now"])
    with TestClient(app, follow_redirects=False) as client:
        first = client.get(f"/c/{token}", headers={"User-Agent": DESKTOP})
        clock["now"] = sent_at + timedelta(minutes=20)
        second = client.get(f"/c/{token}", headers={"User-Agent": DESKTOP})
    assert first.status_code == second.status_code == 302
    assert first.headers["location"] == second.headers["location"]
    with _db(project) as db:
        rows = db.execute("SELECT machine FROM clicks ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [1, 0]


def _statuses(project: Path, address: str) -> tuple[str, list[str]]:
    with _db(project) as db:
        enrollment = db.execute(
            "SELECT e.id, e.status FROM enrollments e JOIN subscribers s "
            "ON s.id = e.subscriber_id WHERE s.email = ?",
            (address,),
        ).fetchone()
        steps = db.execute(
            "SELECT status FROM deliveries WHERE enrollment_id = ? ORDER BY step",
            (enrollment["id"],),
        ).fetchall()
    return enrollment["status"], [s[0] for s in steps]


def test_a_goal_event_by_cli_ends_the_sequence(sent, project) -> None:
    env = sent["env"]
    out = cli(env, "event", "ada@example.com", GOAL, "--json-data", '{"value": 120}')
    assert "ketamine-therapy: goal reached" in out and "5 pending email(s) cancelled" in out
    assert _statuses(project, "ada@example.com") == ("converted", ["sent"] + ["cancelled"] * 5)
    assert _statuses(project, "bob@example.com")[0] == "active"
    # Another event name changes nothing; an unknown address is an error, no traceback.
    cli(env, "event", "bob@example.com", "newsletter-opened")
    assert _statuses(project, "bob@example.com") == ("active", ["sent"] + ["scheduled"] * 5)
    wrong = cli(env, "event", "nobody@example.com", GOAL, code=1)
    assert "Error: nobody@example.com is not a subscriber" in wrong and "Traceback" not in wrong
    bad = cli(env, "event", "bob@example.com", GOAL, "--json-data", "{nope", code=1)
    assert "Error: --json-data: not JSON" in bad
    bad_at = cli(env, "event", "bob@example.com", GOAL, "--at", "yesterday", code=1)
    assert "Error: --at:" in bad_at
    assert _statuses(project, "bob@example.com")[0] == "active"


def test_a_goal_event_by_api_with_a_token(sent, project) -> None:
    url = f"{sent['base']}/api/events"
    event = {"email": "bob@example.com", "event": GOAL, "at": "2026-11-02T10:00:00Z", "id": "o-1"}
    wrong = httpx.post(url, json=event, headers={"Authorization": "Bearer not-the-token"})
    missing = httpx.post(url, json=event)
    assert wrong.status_code == missing.status_code == 401
    assert _statuses(project, "bob@example.com")[0] == "active"
    good = {"Authorization": f"Bearer {API_TOKEN}"}
    done = httpx.post(url, json=event, headers=good)
    assert done.status_code == 201, done.text
    assert done.json()["converted"] == [SLUG] and done.json()["cancelled"] == 5
    again = httpx.post(url, json=event, headers=good)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    unknown = httpx.post(url, json={**event, "email": "x@example.com", "id": "o-2"}, headers=good)
    assert unknown.status_code == 404
    broken = httpx.post(url, content=b"{not json", headers=good)
    assert broken.status_code == 400
    with _db(project) as db:
        events = db.execute("SELECT name, occurred_at, source, external_id FROM events").fetchall()
        converted = db.execute("SELECT converted_at FROM enrollments WHERE status = 'converted'")
        converted_at = [r[0] for r in converted]
    assert [tuple(e) for e in events] == [(GOAL, "2026-11-02 10:00:00.000000", "api", "o-1")]
    assert converted_at == ["2026-11-02 10:00:00.000000"]
    assert _statuses(project, "bob@example.com") == ("converted", ["sent"] + ["cancelled"] * 5)
