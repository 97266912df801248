"""Tracked clicks and goal events end to end: `dripline run` to a real SMTP server, the
email read back, `dripline serve` as its own process, headless Chromium following the
link to a local page, and the database read afterwards."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from results_support import (
    API_TOKEN,
    DRIPLINE,
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
        # The pass ran on a clock an hour back; its hand-off and acceptance times (the
        # wall clock) too.
        with sqlite3.connect(project / "dripline.db") as db:
            db.execute(
                "UPDATE deliveries SET attempted_at = sent_at, accepted_at = sent_at "
                "WHERE status = 'sent'"
            )
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
    page = browser.new_page()  # Chromium's own user agent, "HeadlessChrome" and all
    agent = page.evaluate("navigator.userAgent")
    page.goto(link)
    landed = page.url
    shown = page.locator("#q").inner_text()
    page.close()
    assert "HeadlessChrome/" in agent
    assert landed.startswith(sent["landing"] + "?ref=email1&")
    assert "utm_source=dripline" in landed and "utm_campaign=ketamine-therapy" in landed
    assert shown == landed.removeprefix(sent["landing"].rsplit("/landing", 1)[0])
    with _db(project) as db:
        clicks = db.execute("SELECT * FROM clicks").fetchall()
        columns = {row[1] for row in db.execute("PRAGMA table_info(clicks)")}
    assert len(clicks) == 1
    # A person's click (an hour after delivery), from a browser no list can vouch for.
    assert clicks[0]["machine"] == 0 and clicks[0]["user_agent_class"] == "headless"
    assert clicks[0]["position"] == 0
    # Time and a class only: no address, no user-agent string.
    assert columns == {"id", "delivery_id", "position", "clicked_at", "user_agent_class", "machine"}
    report = json.loads(cli(sent["env"], "report", SLUG, "--json"))["steps"][0]
    assert (report["clicks"], report["unclassified_clicks"], report["machine_clicks"]) == (1, 1, 0)
    # A desktop browser's click on the same email adds no unique click, and makes it a
    # click some known browser vouches for.
    context = browser.new_context(user_agent=DESKTOP)
    desktop = context.new_page()
    desktop.goto(link)
    context.close()
    report = json.loads(cli(sent["env"], "report", SLUG, "--json"))["steps"][0]
    assert (report["clicks"], report["unclassified_clicks"]) == (1, 0)


def test_scanners_and_unfurlers_count_as_machine_clicks(sent, project) -> None:
    text, _ = parts(sent["messages"]["bob@example.com"])
    link = links(text, sent["base"], "c")[1]
    scanner = httpx.get(link, headers={"User-Agent": "Mozilla/5.0 BingPreview/1.0b"})
    assert scanner.status_code == 302
    # No user agent at all: every browser and mail app sends one.
    assert httpx.get(link, headers={"User-Agent": ""}).status_code == 302
    # A link pasted into a chat is fetched by its unfurler, an hour after delivery.
    slack = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
    assert httpx.get(link, headers={"User-Agent": slack}).status_code == 302
    with _db(project) as db:
        rows = db.execute("SELECT user_agent_class, machine FROM clicks ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [("scanner", 1), ("none", 1), ("crawler", 1)]


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
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)  # after enrolling
    when = at.isoformat().replace("+00:00", "Z")
    event = {"email": "bob@example.com", "event": GOAL, "at": when, "id": "o-1"}
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
    json_type = {**good, "Content-Type": "application/json"}
    broken = httpx.post(url, content=b"{not json", headers=json_type)
    assert broken.status_code == 400
    with _db(project) as db:
        events = db.execute("SELECT name, occurred_at, source, external_id FROM events").fetchall()
        converted = db.execute("SELECT converted_at FROM enrollments WHERE status = 'converted'")
        converted_at = [r[0] for r in converted]
    stored = at.strftime("%Y-%m-%d %H:%M:%S.%f")
    assert [tuple(e) for e in events] == [(GOAL, stored, "api", "o-1")]
    assert converted_at == [stored]
    assert _statuses(project, "bob@example.com") == ("converted", ["sent"] + ["cancelled"] * 5)


def test_nan_and_infinity_in_event_data_are_refused_and_nothing_is_stored(sent, project) -> None:
    env = sent["env"]
    for value in ("NaN", "Infinity", "-Infinity"):
        out = cli(env, "event", "ada@example.com", GOAL, "--json-data", f'{{"v": {value}}}', code=1)
        assert out.count("Error:") == 1 and "--json-data: not JSON" in out
        assert value in out and "Traceback" not in out
    url = f"{sent['base']}/api/events"
    good = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    body = b'{"email": "bob@example.com", "event": "booked-consult", "data": {"v": NaN}}'
    answer = httpx.post(url, content=body, headers=good)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("data: not JSON")
    with _db(project) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert _statuses(project, "ada@example.com")[0] == "active"
    assert _statuses(project, "bob@example.com")[0] == "active"


def test_the_event_api_answers_json_for_every_status(sent, project) -> None:
    url = f"{sent['base']}/api/events"
    good = {"Authorization": f"Bearer {API_TOKEN}"}
    event = {"email": "bob@example.com", "event": GOAL}
    # A form post or plain text is refused before it is read: 415, in JSON.
    for kind in ("application/x-www-form-urlencoded", "text/plain", None):
        headers = {**good, **({"Content-Type": kind} if kind else {})}
        answer = httpx.post(url, content=json.dumps(event).encode(), headers=headers)
        assert answer.status_code == 415, (kind, answer.text)
        assert "application/json" in answer.json()["error"]
    # A wrong method: 405 in JSON, naming the one allowed.
    for method in ("GET", "PUT", "DELETE"):
        answer = httpx.request(method, url, headers=good)
        assert answer.status_code == 405, (method, answer.text)
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.headers["allow"] == "POST" and answer.json()["error"]
    with _db(project) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    # The database breaks under the server (its events table gone): 500, in JSON.
    with _db(project) as db:
        db.execute("ALTER TABLE events RENAME TO events_gone")
    answer = httpx.post(url, json=event, headers=good)
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"] and "Traceback" not in answer.text
    assert _statuses(project, "bob@example.com")[0] == "active"  # nothing half-done
    # Mended, the same event is recorded.
    with _db(project) as db:
        db.execute("ALTER TABLE events_gone RENAME TO events")
    assert httpx.post(url, json=event, headers=good).status_code == 201
    assert _statuses(project, "bob@example.com")[0] == "converted"


def test_a_head_request_redirects_but_records_no_click(sent, project) -> None:
    text, _ = parts(sent["messages"]["ada@example.com"])
    link = links(text, sent["base"], "c")[0]
    checked = httpx.head(link, headers={"User-Agent": DESKTOP})
    assert checked.status_code == 302
    assert checked.headers["location"].startswith(sent["landing"] + "?ref=email1&")
    with _db(project) as db:
        assert db.execute("SELECT count(*) FROM clicks").fetchone()[0] == 0
    followed = httpx.get(link, headers={"User-Agent": DESKTOP})
    assert followed.status_code == 302
    assert followed.headers["location"] == checked.headers["location"]
    with _db(project) as db:
        assert db.execute("SELECT count(*) FROM clicks").fetchone()[0] == 1


def test_head_on_an_open_image_and_tokens_of_unsent_deliveries_count_nothing(sent, project) -> None:
    base, tokens = sent["base"], tracking_tokens(SECRET)
    with _db(project) as db:
        rows = db.execute(
            "SELECT d.id, d.status FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id "
            "JOIN subscribers s ON s.id = e.subscriber_id WHERE s.email = 'ada@example.com' "
            "ORDER BY d.step"
        ).fetchall()
    (sent_id, first), (scheduled_id, second) = rows[0], rows[1]
    assert (first, second) == ("sent", "scheduled")
    pixel = f"{base}/o/{tokens.open(sent_id, SLUG)}"
    assert httpx.head(pixel, headers={"User-Agent": DESKTOP}).status_code == 200
    with _db(project) as db:
        assert db.execute("SELECT count(*) FROM opens").fetchone()[0] == 0
    assert httpx.get(pixel, headers={"User-Agent": DESKTOP}).status_code == 200
    # Signed with the right key, but for step 2, which was never sent: no such email exists.
    for url in (
        f"{base}/c/{tokens.click(scheduled_id, 0, SLUG)}",
        f"{base}/o/{tokens.open(scheduled_id, SLUG)}",
    ):
        answer = httpx.get(url, headers={"User-Agent": DESKTOP})
        assert answer.status_code == 404 and "location" not in answer.headers
    with _db(project) as db:
        assert db.execute("SELECT count(*) FROM opens").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM clicks").fetchone()[0] == 0


def test_events_in_the_future_or_before_enrolling_are_refused(sent, project) -> None:
    env = sent["env"]
    now = datetime.now(UTC)
    future = (now + timedelta(days=2)).isoformat()
    out = cli(env, "event", "ada@example.com", GOAL, "--at", future, code=1)
    assert out.count("Error:") == 1 and "--at:" in out and "is in the future" in out
    early = (now - timedelta(days=30)).isoformat()
    out = cli(env, "event", "ada@example.com", GOAL, "--at", early, code=1)
    assert "--at:" in out and "before the subscriber's enrollment" in out
    url = f"{sent['base']}/api/events"
    good = {"Authorization": f"Bearer {API_TOKEN}"}
    for at in (future, early):
        answer = httpx.post(
            url, json={"email": "bob@example.com", "event": GOAL, "at": at}, headers=good
        )
        assert answer.status_code == 400 and answer.json()["error"].startswith("at: ")
    with _db(project) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert _statuses(project, "ada@example.com") == ("active", ["sent"] + ["scheduled"] * 5)
    assert _statuses(project, "bob@example.com")[0] == "active"
    # A clock a minute ahead of ours is within the skew: recorded.
    cli(env, "event", "ada@example.com", GOAL, "--at", (now + timedelta(minutes=1)).isoformat())
    assert _statuses(project, "ada@example.com")[0] == "converted"


def test_a_click_seconds_after_the_hand_off_is_a_machine_click_late_in_a_pass(
    sent, project
) -> None:
    # A message sent before acceptance times were recorded (accepted_at NULL): bob's chunk
    # was handed to the relay 40 minutes into a long pass (sent_at is the pass's clock); a
    # scan on arrival is seconds after the hand-off.
    text, _ = parts(sent["messages"]["bob@example.com"])
    token = links(text, sent["base"], "c")[0].rsplit("/", 1)[1]
    with _db(project) as db:
        db.execute(
            "UPDATE deliveries SET attempted_at = datetime(sent_at, '+40 minutes') || '.000000', "
            "accepted_at = NULL "
            "WHERE status = 'sent' AND enrollment_id = (SELECT e.id FROM enrollments e JOIN "
            "subscribers s ON s.id = e.subscriber_id WHERE s.email = 'bob@example.com')"
        )
        row = db.execute(
            "SELECT d.sent_at, d.attempted_at FROM deliveries d JOIN enrollments e "
            "ON e.id = d.enrollment_id JOIN subscribers s ON s.id = e.subscriber_id "
            "WHERE s.email = 'bob@example.com' AND d.status = 'sent'"
        ).fetchone()
    sent_at, handed = (datetime.fromisoformat(t).replace(tzinfo=UTC) for t in row)
    assert handed - sent_at > timedelta(minutes=30)
    clock = {"now": handed + timedelta(seconds=2)}
    app = create_app(load_settings(environ=sent["env"]), clock=lambda: clock["now"])
    with TestClient(app, follow_redirects=False) as client:
        scan = client.get(f"/c/{token}", headers={"User-Agent": DESKTOP})
        clock["now"] = handed + timedelta(minutes=20)
        person = client.get(f"/c/{token}", headers={"User-Agent": DESKTOP})
    assert scan.status_code == person.status_code == 302
    with _db(project) as db:
        rows = db.execute("SELECT machine FROM clicks ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [1, 0]


class _ConvertsMidPass(RecordingHandler):
    """On the first message, records the goal for an address of a later chunk (claimed by
    the running pass, not yet handed to the relay) with `dripline event`, then replies."""

    def __init__(self, env: dict[str, str], address: str) -> None:
        super().__init__()
        self.env, self.address = env, address
        self.event: str | None = None

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.event is None:
            done = subprocess.run(
                [str(DRIPLINE), "event", self.address, GOAL, "--json"],
                env={**os.environ, **self.env},
                capture_output=True,
                text=True,
                timeout=60,
            )
            self.event = done.stdout if done.returncode == 0 else done.stderr
        return await super().handle_DATA(server, session, envelope)


def test_a_goal_reached_during_a_pass_stops_the_claimed_message(project: Path) -> None:
    """`dripline run` has claimed everyone's step 1; while it sends the first chunk, the
    last person converts: their claimed message must not go out (nor any later one)."""
    now = datetime.now(UTC).replace(microsecond=0)
    with landing_page() as landing:
        track(project, landing)
    env = env_for(project, "http://127.0.0.1:9")
    people = [f"p{i:03d}@example.com" for i in range(150)]  # more than one chunk of 64
    table = project / "people.csv"
    table.write_text("email,name\n" + "".join(f"{a},Pat Doe\n" for a in people))
    cli(env, "import", str(table), "--campaign", SLUG)
    last = people[-1]
    handler = _ConvertsMidPass(env, last)
    with running_server(handler) as server:
        run_once(env, f"smtp://127.0.0.1:{server.port}", now + timedelta(hours=1))
    assert handler.event is not None
    assert json.loads(handler.event)["converted"] == [SLUG], handler.event
    received = {r.rcpt_tos[0] for r in handler.received}
    assert last not in received
    assert received == set(people[:-1])
    status, steps = _statuses(project, last)
    assert (status, steps) == ("converted", ["cancelled"] * 6)
