"""Guard rails (dripline/guards.py): nothing half-finished reaches a subscriber.

Real `dripline` processes; what reached the Maildir and the database is read back.
"""

from __future__ import annotations

import email
import email.policy
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from smtp_servers import RecordingHandler, running_server

from dripline.cli import main
from dripline.guards import is_reserved_domain

DRIPLINE = str(Path(sys.executable).with_name("dripline"))
ARTICLE = Path(__file__).resolve().parent / "fixtures" / "articles" / "sleep-evening-routine.txt"
NOW = "2026-03-05T20:00:30Z"


@pytest.fixture
def env(project: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRIPLINE_")}
    return {
        **clean,
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_SECRET_KEY": "test-secret-for-guard-rails",
        "DRIPLINE_SENDER": f"maildir:{project / 'outbox'}",
    }


def dripline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DRIPLINE, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def subscribe(env: dict[str, str], slug: str = "ketamine-therapy") -> None:
    done = dripline(
        env, "subscribe", "ana@example.com", "--campaign", slug, "--at", "2026-03-05T12:00-08:00"
    )
    assert done.returncode == 0, done.stderr


def statuses(project: Path) -> list[str]:
    with sqlite3.connect(project / "dripline.db") as db:
        return [row[0] for row in db.execute("SELECT status FROM deliveries ORDER BY id")]


def attempts(project: Path) -> set[int]:
    with sqlite3.connect(project / "dripline.db") as db:
        return {row[0] for row in db.execute("SELECT attempts FROM deliveries")}


def outbox(project: Path) -> list[email.message.EmailMessage]:
    folder = project / "outbox" / "new"
    if not folder.is_dir():
        return []
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted(folder.iterdir())
    ]


def line_of(path: Path, needle: str) -> int:
    text = path.read_text(encoding="utf-8")
    return text[: text.index(needle)].count("\n") + 1


# -- 1. links to localhost ----------------------------------------------------------------


def test_run_refuses_to_send_links_to_localhost_naming_the_base_url(project, env):
    env["DRIPLINE_ALLOW_EXAMPLE_ADDRESSES"] = "1"
    subscribe(env)
    done = dripline(env, "run", "--once", "--now", NOW)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: DRIPLINE_BASE_URL is not set")
    assert "--allow-local-links" in done.stderr and "Traceback" not in done.stderr
    assert outbox(project) == [] and set(statuses(project)) == {"scheduled"}

    done = dripline({**env, "DRIPLINE_BASE_URL": "http://mail.example.org"}, "run", "--once")
    assert done.returncode == 1
    assert "DRIPLINE_BASE_URL is 'http://mail.example.org', not https://" in done.stderr
    assert outbox(project) == []


@pytest.mark.parametrize(
    ("base_url", "shown", "why"),
    [
        (
            "https://ops:hunter2@news.example.org",
            "https://ops:***@news.example.org",
            "holds a user name or password",
        ),
        ("https://news.example.org/?utm=mail", None, "has a query"),
        ("https://news.example.org/#top", None, "has a fragment"),
        ("https:///u", None, "has no host name"),
        ("https://localhost:8443", None, "points at this machine (localhost)"),
        ("https://127.0.0.1", None, "points at this machine (127.0.0.1)"),
        ("https://[::1]:8000", None, "points at this machine (::1)"),
        ("https://mail.localhost", None, "points at this machine (mail.localhost)"),
    ],
)
def test_run_refuses_a_base_url_subscribers_cannot_use(project, env, base_url, shown, why):
    env["DRIPLINE_ALLOW_EXAMPLE_ADDRESSES"] = "1"
    subscribe(env)
    done = dripline({**env, "DRIPLINE_BASE_URL": base_url}, "run", "--once", "--now", NOW)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("Error: DRIPLINE_BASE_URL ") and why in line
    assert repr(shown or base_url) in line
    assert "hunter2" not in done.stderr + done.stdout
    assert outbox(project) == [] and set(statuses(project)) == {"scheduled"}


def test_a_malformed_base_url_is_refused_even_for_a_local_inbox(project, env):
    env["DRIPLINE_ALLOW_EXAMPLE_ADDRESSES"] = "1"
    subscribe(env)
    env["DRIPLINE_BASE_URL"] = "http://ops:hunter2@127.0.0.1:8000"
    done = dripline(env, "run", "--once", "--now", NOW, "--allow-local-links")
    assert done.returncode == 1
    assert "holds a user name or password" in done.stderr and "hunter2" not in done.stderr
    # Loopback itself is fine when asked for (a local Mailpit), as long as it is well formed.
    env["DRIPLINE_BASE_URL"] = "https://localhost:8443"
    done = dripline(env, "run", "--once", "--now", NOW, "--allow-local-links")
    assert done.returncode == 0, done.stderr
    (message,) = outbox(project)
    assert "<https://localhost:8443/u/" in message["List-Unsubscribe"]


def test_a_base_url_from_dripline_toml_is_named_by_its_file_and_line(project, env):
    settings_file = project / "dripline.toml"
    settings_file.write_text('render_budget = 5\nbase_url = "https://127.0.0.1"\n', "utf-8")
    done = dripline(env, "run", "--once", "--now", NOW)
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"Error: base_url in {settings_file}:2 is 'https://127.0.0.1', which points at this "
        "machine (127.0.0.1)"
    )


def test_serve_refuses_links_to_this_machine_unless_allowed(project, env):
    env["DRIPLINE_BASE_URL"] = "http://127.0.0.1:8000"
    done = dripline(env, "serve", "--port", "1")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("Error: DRIPLINE_BASE_URL is 'http://127.0.0.1:8000', not https://")
    assert "--allow-local-links" in line
    done = dripline({**env, "DRIPLINE_BASE_URL": "https://mail.example.org?x=1"}, "serve")
    assert done.returncode == 1 and "has a query" in done.stderr


def test_allow_local_links_sends_to_a_local_test_inbox(project, env):
    env["DRIPLINE_ALLOW_EXAMPLE_ADDRESSES"] = "1"
    subscribe(env)
    done = dripline(env, "run", "--once", "--now", NOW, "--allow-local-links")
    assert done.returncode == 0, done.stderr
    (message,) = outbox(project)
    assert "<http://127.0.0.1:8000/u/" in message["List-Unsubscribe"]
    assert statuses(project)[0] == "sent"


def test_an_https_base_url_or_a_sender_that_reaches_no_one_needs_no_flag(project, env):
    env["DRIPLINE_ALLOW_EXAMPLE_ADDRESSES"] = "1"
    subscribe(env)
    done = dripline(env, "run", "--once", "--now", NOW, "--sender", "console:")
    assert done.returncode == 0, done.stderr
    assert "List-Unsubscribe: <http://127.0.0.1:8000/u/" in done.stdout  # printed, not sent
    assert outbox(project) == []
    env["DRIPLINE_BASE_URL"] = "https://news.example.org"
    done = dripline(env, "run", "--once", "--now", "2026-03-20T20:00:30Z")
    assert done.returncode == 0, done.stderr
    (message,) = outbox(project)  # step 2, overdue by then
    assert "<https://news.example.org/u/" in message["List-Unsubscribe"]


def test_send_test_refuses_links_to_localhost_over_smtp(project, env):
    handler = RecordingHandler()
    with running_server(handler) as server:
        args = ("send-test", "ketamine-therapy", "--to", "qa@example.com")
        smtp = ("--sender", f"smtp://127.0.0.1:{server.port}")
        refused = dripline(env, *args, *smtp)
        assert refused.returncode == 1
        assert refused.stderr.startswith("Error: DRIPLINE_BASE_URL is not set")
        assert handler.received == []
        allowed = dripline(env, *args, *smtp, "--allow-local-links")
        assert allowed.returncode == 0, allowed.stderr
        assert len(handler.received) == 1
    assert dripline(env, *args, "--sender", "memory:x").returncode == 0


# -- 2. placeholders and example domains -----------------------------------------------


def test_an_imported_campaign_fails_check_and_is_never_sent(project, env):
    env["DRIPLINE_BASE_URL"] = "https://news.example.org"
    imported = dripline(env, "import-article", str(ARTICLE), "--slug", "sleep")
    assert imported.returncode == 0, imported.stderr
    toml = project / "campaigns" / "sleep" / "campaign.toml"

    check = dripline(env, "check", "sleep")
    assert check.returncode == 1
    errors = [line for line in check.stderr.splitlines() if ": error: " in line]
    sender_line = line_of(toml, "name = 'EDIT ME".replace("'", '"'))
    address_line = line_of(toml, "address = ")
    postal_line = line_of(toml, "postal_address")
    assert errors == [
        f"{toml}:{sender_line}: error: from.name is still a placeholder "
        "('EDIT ME: sender name'): fill in the sender's name, as inboxes show it",
        f"{toml}:{address_line}: error: from.address is still a placeholder "
        "('edit-me@example.com'): fill in the address the campaign is sent from",
        f"{toml}:{postal_line}: error: footer.postal_address is still a "
        "placeholder ('EDIT ME: company name, street address, city, postal code, country'): "
        "fill in your real postal address (the law requires one in commercial email)",
    ]

    subscribe(env, "sleep")
    # Nothing can be sent at all (the sample's example.com sender is not allowed): refused.
    done = dripline(env, "run", "--once", "--now", NOW)
    assert done.returncode == 1
    assert "Error: not starting: no campaign can be sent; 5 problem(s)" in done.stderr
    assert f"{toml}:{postal_line}: footer.postal_address" in done.stderr
    # Not even an explicit allowance for example addresses sends a placeholder: the
    # imported campaign is held (its deliveries wait, untried), the sample could go.
    done = dripline(env, "run", "--once", "--now", NOW, "--allow-example-addresses")
    assert done.returncode == 0, done.stderr
    assert (
        f"campaign sleep is held: {toml}:{sender_line}: not sent: from.name is still a "
        "placeholder ('EDIT ME: sender name')" in done.stderr
    )
    assert outbox(project) == [] and set(statuses(project)) == {"scheduled"}
    assert attempts(project) == {0}

    # Filled in: checked clean of placeholders, and sent.
    text = toml.read_text(encoding="utf-8")
    text = text.replace("EDIT ME: sender name", "Sleep Well Clinic")
    text = text.replace("edit-me@example.com", "news@sleepwell-clinic.com")
    text = text.replace(
        "EDIT ME: company name, street address, city, postal code, country",
        "Sleep Well Clinic, 1 High Street, Bristol BS1 4DJ, UK",
    )
    toml.write_text(text, encoding="utf-8")
    assert dripline(env, "check", "sleep").returncode == 0
    # The ketamine sample's example.com sender holds only that campaign; sleep goes out.
    done = dripline(env, "run", "--once", "--now", NOW)
    assert done.returncode == 0, done.stderr
    assert "campaign ketamine-therapy is held: " in done.stderr
    assert "ketamine-therapy/campaign.toml:6: not sent: reply_to care@example.com" in done.stderr
    (message,) = outbox(project)
    assert message["From"].addresses[0].addr_spec == "news@sleepwell-clinic.com"


def test_example_domains_are_a_warning_in_check_and_an_error_in_run(project, env):
    env["DRIPLINE_BASE_URL"] = "https://news.example.org"
    toml = project / "campaigns" / "ketamine-therapy" / "campaign.toml"
    check = dripline(env, "check")
    assert check.returncode == 0, check.stderr
    assert (
        f"{toml}:6: warning: reply_to care@example.com is at example.com, a domain reserved "
        "for examples" in check.stdout
    )
    assert f"{toml}:10: warning: from.address hello@example.com" in check.stdout
    subscribe(env)
    done = dripline(env, "run", "--once", "--now", NOW)
    assert done.returncode == 1
    assert f"{toml}:6: reply_to care@example.com" in done.stderr
    assert "--allow-example-addresses sends from example domains anyway" in done.stderr
    assert outbox(project) == [] and set(statuses(project)) == {"scheduled"}
    done = dripline({**env, "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1"}, "run", "--once", "--now", NOW)
    assert done.returncode == 0, done.stderr
    assert len(outbox(project)) == 1


def fill_in(toml: Path) -> None:
    text = toml.read_text(encoding="utf-8")
    text = text.replace("EDIT ME: sender name", "Sleep Well Clinic")
    text = text.replace("edit-me@example.com", "news@sleepwell-clinic.com")
    text = text.replace(
        "EDIT ME: company name, street address, city, postal code, country",
        "Sleep Well Clinic, 1 High Street, Bristol BS1 4DJ, UK",
    )
    toml.write_text(text, encoding="utf-8")


def wait_for(what, deadline_s: float = 90.0) -> None:
    import time

    deadline = time.monotonic() + deadline_s
    while not what():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def test_a_draft_campaign_is_held_at_start_up_while_the_others_send(project, env, tmp_path):
    """`dripline run` with one campaign left half-finished: only that one waits."""
    import signal
    from datetime import UTC, datetime, timedelta

    env["DRIPLINE_BASE_URL"] = "https://news.example.org"
    env["DRIPLINE_ALLOW_EXAMPLE_ADDRESSES"] = "1"
    imported = dripline(env, "import-article", str(ARTICLE), "--slug", "sleep")
    assert imported.returncode == 0, imported.stderr
    toml = project / "campaigns" / "sleep" / "campaign.toml"
    line = line_of(toml, "EDIT ME: sender name")
    at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    for slug, address in (("ketamine-therapy", "ana@example.com"), ("sleep", "bo@example.com")):
        done = dripline(env, "subscribe", address, "--campaign", slug, "--at", at)
        assert done.returncode == 0, done.stderr
    out, err = tmp_path / "run.out", tmp_path / "run.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [DRIPLINE, "run", "--tick", "0.2", "--heartbeat", "0.6"],
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        # The sample goes out, and several passes later the draft still waits.
        wait_for(lambda: len(outbox(project)) == 1)
        wait_for(lambda: out.read_text().count("still running") >= 3)
        (sent,) = outbox(project)
        assert sent["To"].addresses[0].addr_spec == "ana@example.com"
        fill_in(toml)  # finished while running: it goes out without a restart
        wait_for(lambda: len(outbox(project)) == 2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0, err.read_text()
    log = err.read_text()
    held = (
        f"campaign sleep is held: {toml}:{line}: not sent: from.name is still a placeholder "
        "('EDIT ME: sender name')"
    )
    assert log.count(held) == 1, log  # once, not once per pass
    assert log.count("campaign sleep is no longer held") == 1
    assert "Traceback" not in log
    addresses = [m["To"].addresses[0].addr_spec for m in outbox(project)]
    assert sorted(addresses) == ["ana@example.com", "bo@example.com"]


def test_a_campaign_edited_into_a_placeholder_while_running_is_not_sent(project, env):
    """The start-up check passed; a later pass still never sends the edited campaign."""
    from datetime import UTC, datetime

    from dripline.runtime import dispatcher_for
    from dripline.settings import load_settings

    env["DRIPLINE_BASE_URL"] = "https://news.example.org"
    env["DRIPLINE_ALLOW_EXAMPLE_ADDRESSES"] = "1"
    subscribe(env)
    settings = load_settings(environ=env)
    toml = project / "campaigns" / "ketamine-therapy" / "campaign.toml"
    with dispatcher_for(settings) as dispatcher:
        toml.write_text(
            toml.read_text(encoding="utf-8").replace(
                'name = "Clearwater Mind Clinic"', 'name = "EDIT ME: sender name"'
            ),
            encoding="utf-8",
        )
        report = dispatcher.dispatch_due(datetime(2026, 3, 5, 20, 0, 30, tzinfo=UTC))
    # Held, not tried: no attempt is spent, so a draft left for weeks never fails.
    assert (report.claimed, report.sent, report.deferred, report.failed) == (0, 0, 0, 0)
    assert outbox(project) == [] and statuses(project)[0] == "scheduled"
    assert attempts(project) == {0}


def test_a_placeholder_written_into_an_email_fails_check_at_its_line(project, env):
    step = project / "campaigns" / "ketamine-therapy" / "02-treatment-resistant.md"
    text = step.read_text(encoding="utf-8").replace(
        "## High Efficacy", "Edit me: a quote from Dr. Lee goes here.\n\n## High Efficacy", 1
    )
    step.write_text(text, encoding="utf-8")
    check = dripline(env, "check", "ketamine-therapy")
    assert check.returncode == 1
    assert (
        f"{step}:{line_of(step, 'Edit me:')}: error: the email still holds a placeholder "
        "('Edit me'): write that part" in check.stderr
    )


@pytest.mark.parametrize(
    ("domain", "reserved"),
    [
        ("example.com", True),
        ("news.EXAMPLE.org", True),
        ("shop.test", True),
        ("mail.invalid", True),
        ("localhost", True),
        ("example.co.uk", False),
        ("myexample.com", False),
        ("clinic.com", False),
    ],
)
def test_reserved_domains_follow_rfc_2606_and_6761(domain, reserved):
    assert is_reserved_domain(domain) is reserved


def test_the_demo_sends_without_a_base_url_or_real_addresses(project):
    result = CliRunner(env={"DRIPLINE_BASE_URL": None, "DRIPLINE_SECRET_KEY": None}).invoke(
        main, ["--root", str(project), "demo", "--start", "2026-03-05T20:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    assert len(list((project / "demo" / "outbox" / "new").iterdir())) == 24
