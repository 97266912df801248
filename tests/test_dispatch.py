"""Dispatch end to end: subscribe, `dripline run --once --now ...`, real SMTP servers, the DB."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from smtp_servers import FaultyHandler, RecordingHandler, running_server
from sqlite_support import table_dropped

from dripline.cli import main
from dripline.tokens import CLICK, tracking_tokens

T0 = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)  # Thursday, 12:00 in Los Angeles


@pytest.fixture
def env(project: Path) -> dict[str, str]:
    # A second campaign, to see that a bounce stops every campaign of that subscriber.
    shutil.copytree(project / "campaigns/ketamine-therapy", project / "campaigns/second")
    return {
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_SECRET_KEY": "test-secret",
        "DRIPLINE_BASE_URL": "https://news.example.com",
        # The sample campaign sends from example.com to example.com test servers.
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
    }


def cli(env: dict[str, str], *args: str) -> str:
    result = CliRunner(env=env).invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def subscribe(env, address: str, campaign: str = "ketamine-therapy") -> None:
    cli(
        env,
        "subscribe",
        address,
        "--campaign",
        campaign,
        "--name",
        "Pat Doe",
        "--tz",
        "America/Los_Angeles",
        "--at",
        T0.isoformat(),
    )


def run_once(env, sender: str, now: datetime) -> str:
    return cli(env, "run", "--once", "--now", now.isoformat(), "--sender", sender)


def rows(project: Path) -> dict[tuple[str, str, int], sqlite3.Row]:
    db = sqlite3.connect(project / "dripline.db")
    db.row_factory = sqlite3.Row
    found = db.execute(
        "SELECT s.email, s.status AS subscriber_status, e.campaign, d.* FROM deliveries d "
        "JOIN enrollments e ON e.id = d.enrollment_id JOIN subscribers s ON s.id = e.subscriber_id"
    ).fetchall()
    db.close()
    return {(r["email"], r["campaign"], r["step"]): r for r in found}


def db_time(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def test_outcomes_are_recorded_and_retried_at_the_backoff_times(project, env):
    people = ["ok", "defer-once", "unknown", "policy", "drop-in-data", "close421"]
    for person in people:
        subscribe(env, f"{person}@example.com")
    subscribe(env, "unknown@example.com", "second")
    handler = FaultyHandler()
    with running_server(handler) as server:
        url = f"smtp://127.0.0.1:{server.port}?timeout=2"
        run_once(env, url, T0)
        state = rows(project)
        first = {p: state[(f"{p}@example.com", "ketamine-therapy", 1)] for p in people}
        assert first["ok"]["status"] == "sent"
        assert first["ok"]["reply"].startswith("250 2.0.0 Ok: queued as Q")
        assert first["defer-once"]["status"] == "scheduled"
        assert "451" in first["defer-once"]["last_error"]
        retry_at = db_time(first["defer-once"]["due_at"])
        assert T0 + timedelta(minutes=5) <= retry_at <= T0 + timedelta(minutes=5.5)
        assert first["unknown"]["status"] == "failed" and "5.1.1" in first["unknown"]["last_error"]
        assert first["unknown"]["subscriber_status"] == "bounced"
        assert state[("unknown@example.com", "second", 2)]["status"] == "cancelled"
        assert state[("unknown@example.com", "ketamine-therapy", 2)]["status"] == "cancelled"
        assert first["policy"]["status"] == "failed" and "5.7.1" in first["policy"]["last_error"]
        assert first["policy"]["subscriber_status"] == "active"
        assert first["drop-in-data"]["status"] == "ambiguous"
        assert first["close421"]["status"] == "scheduled"

        # Not yet due: nothing is retried early.
        run_once(env, url, T0 + timedelta(minutes=4))
        assert rows(project)[("defer-once@example.com", "ketamine-therapy", 1)]["attempts"] == 1

        run_once(env, url, T0 + timedelta(minutes=6))
        state = rows(project)
        for person in ("defer-once", "close421"):
            row = state[(f"{person}@example.com", "ketamine-therapy", 1)]
            assert row["status"] == "sent" and row["attempts"] == 2

        # Every message the server took arrived once; the ambiguous one was never re-sent.
        counts = handler.message_ids()
        assert all(n == 1 for n in counts.values()), counts
        received_by = sorted(r.rcpt_tos[0].split("@")[0] for r in handler.received)
        assert received_by == ["close421", "defer-once", "drop-in-data", "ok"]
        sent_ids = {r["message_id"] for r in state.values() if r["status"] == "sent"}
        assert sent_ids <= set(counts)

        # Later steps still reach the others, never the bounced address.
        run_once(env, url, datetime(2026, 3, 9, 17, 0, tzinfo=UTC))
        received_by = [r.rcpt_tos[0] for r in handler.received]
        assert "unknown@example.com" not in received_by
        assert received_by.count("ok@example.com") == 2


def test_messages_carry_the_pass_time_and_a_signed_unsubscribe(project, env):
    subscribe(env, "ana@example.com")
    handler = RecordingHandler()
    with running_server(handler) as server:
        run_once(env, f"smtp://127.0.0.1:{server.port}", T0 + timedelta(seconds=30))
    (received,) = handler.received
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert message["Date"].datetime == T0 + timedelta(seconds=30)
    assert message["Subject"] == "Reason 1 of 6: Rapid relief from symptoms"
    assert str(message["List-Unsubscribe"]).startswith("<https://news.example.com/u/")
    assert "ana" not in str(message["List-Unsubscribe"])  # no address readable in the token
    assert received.mail_from == "hello@example.com"
    assert (
        rows(project)[("ana@example.com", "ketamine-therapy", 1)]["message_id"]
        == (message["Message-ID"])
    )


def test_a_template_greets_by_the_first_name_and_local_zone_the_subscriber_gave(project, env):
    step = project / "campaigns/ketamine-therapy/01-rapid-relief.md"
    greeting = 'Hi {{ subscriber.first_name | default("there") }},'
    assert greeting in step.read_text()
    step.write_text(
        step.read_text().replace(
            greeting,
            greeting + "\n\nTimes in this email are in {{ subscriber.timezone }}.",
        )
    )
    subscribe(env, "pat@example.com")  # --name "Pat Doe" --tz America/Los_Angeles
    handler = RecordingHandler()
    with running_server(handler) as server:
        run_once(env, f"smtp://127.0.0.1:{server.port}", T0 + timedelta(seconds=30))
    (received,) = handler.received
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()
    assert "Hi Pat," in text
    assert "Times in this email are in America/Los_Angeles." in text
    html = message.get_body(("html",)).get_content()
    assert "Hi Pat," in html and "America/Los_Angeles" in html


def test_a_step_sent_only_to_some_addresses_reads_the_claimed_address(project, env):
    step = project / "campaigns/ketamine-therapy/01-rapid-relief.md"
    text = step.read_text()
    step.write_text(
        text.replace("+++\n", "+++\nwhen = \"subscriber.email.startswith('vip-')\"\n", 1)
    )
    for later in sorted(step.parent.glob("0[2-6]-*.md")):  # step 1 is the last step
        later.unlink()
    for address in ("vip-ana@example.com", "bo@example.com", "cy@example.com"):
        subscribe(env, address)
    handler = RecordingHandler()
    with running_server(handler) as server:
        output = run_once(env, f"smtp://127.0.0.1:{server.port}", T0 + timedelta(seconds=30))
    assert [list(r.rcpt_tos) for r in handler.received] == [["vip-ana@example.com"]]
    assert "sent 1" in output and "skipped 2" in output, output
    state = rows(project)
    assert state[("vip-ana@example.com", "ketamine-therapy", 1)]["status"] == "sent"
    assert state[("bo@example.com", "ketamine-therapy", 1)]["status"] == "skipped"
    assert state[("cy@example.com", "ketamine-therapy", 1)]["status"] == "skipped"
    db = sqlite3.connect(project / "dripline.db")
    finished = dict(db.execute("SELECT id, status FROM enrollments"))
    db.close()
    assert sorted(finished.values()) == ["completed"] * 3  # a skipped last step finishes it


def test_run_without_a_secret_key_is_a_clear_error(project, env):
    env = {**env, "DRIPLINE_SECRET_KEY": ""}
    result = CliRunner(env=env).invoke(main, ["run", "--once", "--sender", "memory:x"])
    assert result.exit_code == 1
    assert "DRIPLINE_SECRET_KEY is not set" in result.output


def test_unknown_sender_scheme_names_the_installed_ones(project, env):
    result = CliRunner(env=env).invoke(main, ["run", "--once", "--sender", "carrier-pigeon:x"])
    assert result.exit_code == 1
    assert "unknown sender 'carrier-pigeon'" in result.output
    for scheme in ("maildir:", "memory:", "smtp:", "smtps:", "console:"):
        assert scheme in result.output


def test_return_path_puts_a_verp_envelope_sender_on_each_delivery(project, env):
    from dripline.tokens import TokenSigner, split_verp_address

    subscribe(env, "ana@example.com")
    subscribe(env, "bo@example.com")
    handler = RecordingHandler()
    verp_env = {**env, "DRIPLINE_RETURN_PATH": "bounces@news.example.com"}
    with running_server(handler) as server:
        run_once(verp_env, f"smtp://127.0.0.1:{server.port}", T0 + timedelta(seconds=30))
    state = rows(project)
    signer = TokenSigner(env["DRIPLINE_SECRET_KEY"])
    assert len(handler.received) == 2
    for received in handler.received:
        local = received.mail_from.split("@")[0]
        assert len(local) <= 64 and received.mail_from.endswith("@news.example.com")
        token = split_verp_address(received.mail_from, "bounces@news.example.com")
        assert token is not None and received.rcpt_tos[0].split("@")[0] + "@" not in token
        delivery = state[(received.rcpt_tos[0], "ketamine-therapy", 1)]
        assert signer.read_return_path_token(token) == delivery["id"]
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        assert message["From"] != received.mail_from  # the From header is untouched


def test_without_return_path_the_envelope_sender_is_the_campaign_from(project, env):
    subscribe(env, "ana@example.com")
    handler = RecordingHandler()
    with running_server(handler) as server:
        run_once(env, f"smtp://127.0.0.1:{server.port}", T0 + timedelta(seconds=30))
    (received,) = handler.received
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert received.mail_from == message["From"].addresses[0].addr_spec


def test_a_bad_return_path_is_one_clear_error(project, env):
    bad = {**env, "DRIPLINE_RETURN_PATH": "no-at-sign"}
    result = CliRunner(env=bad).invoke(main, ["run", "--once", "--sender", "memory:"])
    assert result.exit_code == 1
    assert "Error: DRIPLINE_RETURN_PATH" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("clicks", "opens"), [(False, True), (True, False), (True, True), (False, False)]
)
def test_tracked_links_and_the_open_image_are_there_exactly_as_the_campaign_asks(
    project, env, clicks: bool, opens: bool
):
    toml = project / "campaigns/ketamine-therapy/campaign.toml"
    setting = f"\n[tracking]\nclicks = {str(clicks).lower()}\nopens = {str(opens).lower()}\n"
    toml.write_text(toml.read_text() + setting)
    step = project / "campaigns/ketamine-therapy/01-rapid-relief.md"
    links = "\n[Book a call](https://clinic.example.com/book) or [read on](https://clinic.example.com/faq).\n"
    step.write_text(step.read_text() + links)
    subscribe(env, "ana@example.com")
    handler = RecordingHandler()
    with running_server(handler) as server:
        run_once(env, f"smtp://127.0.0.1:{server.port}", T0)
    (received,) = handler.received
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    delivery_id = rows(project)[("ana@example.com", "ketamine-therapy", 1)]["id"]
    tokens = tracking_tokens(env["DRIPLINE_SECRET_KEY"])
    image = "https://news.example.com/o/" + tokens.open(delivery_id, "ketamine-therapy")
    assert (image in html) is opens  # this delivery's own open image, or none at all
    assert "/o/" not in html.replace(image, "") and "/o/" not in text
    tracked = re.findall(r"https://news\.example\.com/c/([A-Za-z0-9_-]+)", html)
    if not clicks:
        assert tracked == [] and "utm_campaign=ketamine-therapy" in html
        return
    assert len(tracked) == 2 and "utm_campaign" not in html  # both links go through /c/
    read = [tokens.read(token, CLICK) for token in tracked]
    assert {link.delivery_id for link in read if link} == {delivery_id}
    assert sorted(link.position for link in read if link) == [0, 1]


def test_tracked_links_that_cannot_be_read_defer_the_message_and_others_still_go(project, env):
    """The step's tracked link positions cannot be read (their table is gone, as when the
    database is away): not the subscriber's fault, so that message goes back to the queue
    at the first back-off time with the reason, unsent and not failed, while the untracked
    campaign's message of the same pass goes out; with the table back, it is sent with
    its tracked links."""
    toml = project / "campaigns/ketamine-therapy/campaign.toml"
    toml.write_text(toml.read_text() + "\n[tracking]\nclicks = true\n")
    step = project / "campaigns/ketamine-therapy/01-rapid-relief.md"
    step.write_text(step.read_text() + "\n[Book a call](https://clinic.example.com/book).\n")
    subscribe(env, "ana@example.com")
    subscribe(env, "ana@example.com", "second")  # the same step, untracked
    handler = RecordingHandler()
    with running_server(handler) as server:
        with table_dropped(project / "dripline.db", "tracked_links"):
            run_once(env, f"smtp://127.0.0.1:{server.port}", T0)
        assert len(handler.received) == 1  # the untracked campaign's
        deferred = rows(project)[("ana@example.com", "ketamine-therapy", 1)]
        assert rows(project)[("ana@example.com", "second", 1)]["status"] == "sent"
        assert (deferred["status"], deferred["attempts"]) == ("scheduled", 0)
        assert deferred["last_error"].startswith("tracked links: ")
        assert "tracked_links" in deferred["last_error"]
        # The first back-off: 5 minutes from the pass, plus up to 10% jitter.
        due = db_time(deferred["due_at"])
        assert T0 + timedelta(minutes=5) <= due <= T0 + timedelta(minutes=5, seconds=30)
        run_once(env, f"smtp://127.0.0.1:{server.port}", due)
    assert len(handler.received) == 2
    message = email.message_from_bytes(handler.received[1].data, policy=email.policy.default)
    html = message.get_body(("html",)).get_content()
    assert re.findall(r"https://news\.example\.com/c/[A-Za-z0-9_-]+", html)
    assert "clinic.example.com/book" not in html  # through /c/ only
    assert rows(project)[("ana@example.com", "ketamine-therapy", 1)]["status"] == "sent"
