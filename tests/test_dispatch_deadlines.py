"""A stalled or dead relay cannot hold a pass: deadlines per exchange, K failures then stop.

Each scenario runs the real `dripline run --once` as a process against a server that
misbehaves and asserts what the database holds afterwards: rows are deferred (or
ambiguous when the message data was sent), never left claimed or sending. The
process must end by itself; the generous subprocess timeout is only a guard.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from smtp_servers import StallingServer, free_port

DRIPLINE = [str(Path(sys.executable).with_name("dripline"))]
NOW = "2026-03-05T20:00:30Z"
GIVE_UP = "not trying it again this pass"
UNTRIED = "not tried: the relay is not answering"


def reason(error: str) -> str:
    for known in ("no complete reply within 1 s", "cannot connect", UNTRIED):
        if known in error:
            return known
    return error


def enrolled(project: Path, count: int) -> dict[str, str]:
    env = {
        **os.environ,
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_SECRET_KEY": "test-secret",
        "DRIPLINE_BASE_URL": "https://news.example.com",
    }
    people = project / "people.csv"
    people.write_text(
        "email,name,timezone,subscribed_at\n"
        + "".join(
            f"r{i}@example.com,Reader {i},America/Los_Angeles,2026-03-05T12:00:00-08:00\n"
            for i in range(count)
        )
    )
    subprocess.run(
        [*DRIPLINE, "import", str(people), "--campaign", "ketamine-therapy"],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def run_pass(env: dict[str, str], sender: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*DRIPLINE, "run", "--once", "--now", NOW, "--sender", sender],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a guard against the old behaviour (stuck for good), not a measurement
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def step1(project: Path) -> tuple[Counter[str], Counter[str]]:
    """(rows of step 1 per status, per reason in last_error)."""
    db = sqlite3.connect(project / "dripline.db")
    found = Counter(
        dict(db.execute("SELECT status, count(*) FROM deliveries WHERE step = 1 GROUP BY status"))
    )
    errors = Counter(
        reason(e or "") for (e,) in db.execute("SELECT last_error FROM deliveries WHERE step = 1")
    )
    db.close()
    return found, errors


@pytest.mark.parametrize("mode", ["after-data", "silent-data"])
def test_a_relay_that_stalls_after_the_data_costs_three_deadlines_not_hours(project, mode):
    env = enrolled(project, 20)
    with StallingServer(mode) as server:
        result = run_pass(env, f"smtp://127.0.0.1:{server.port}?timeout=1")
    counts, _ = step1(project)
    # Three messages reached the server whole and got no reply in time: ambiguous (the
    # relay may have queued them). Then the relay is left alone: the rest wait for a retry.
    assert server.messages == 3
    assert counts["ambiguous"] == 3 and counts["scheduled"] == 17, counts
    assert counts["claimed"] == counts["sending"] == 0
    assert result.stderr.count(GIVE_UP) == 1, result.stderr
    assert "no complete reply within 1 s" in result.stderr


def test_a_greeting_trickled_byte_by_byte_is_given_up_after_three_connections(project):
    env = enrolled(project, 200)  # four chunks: only three connection attempts are made
    with StallingServer("greeting") as server:
        result = run_pass(env, f"smtp://127.0.0.1:{server.port}?timeout=1")
    counts, reasons = step1(project)
    assert server.connections == 3 and server.messages == 0
    assert counts["scheduled"] == 200, counts
    assert set(reasons) == {"no complete reply within 1 s", UNTRIED}, reasons
    assert result.stderr.count(GIVE_UP) == 1, result.stderr


def test_a_refused_connection_defers_the_whole_claim(project):
    env = enrolled(project, 200)
    result = run_pass(env, f"smtp://127.0.0.1:{free_port()}?timeout=1")
    counts, reasons = step1(project)
    assert counts["scheduled"] == 200, counts
    assert set(reasons) == {"cannot connect", UNTRIED}, reasons
    assert result.stderr.count(GIVE_UP) == 1, result.stderr
    assert "deferred 200" in result.stdout
