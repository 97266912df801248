"""`dripline run` as real processes: two workers on one SQLite file, and a clean SIGTERM stop."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

DRIPLINE = [str(Path(sys.executable).with_name("dripline"))]


def write_csv(path: Path, count: int) -> None:
    lines = ["email,name,timezone,subscribed_at"]
    lines += [
        f"reader{i}@example.com,Reader {i},America/Los_Angeles,2026-03-05T12:00:00-08:00"
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def env(project: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_SECRET_KEY": "test-secret",
        "DRIPLINE_SENDER": f"maildir:{project / 'outbox'}",
        "DRIPLINE_BASE_URL": "https://news.example.com",
        # The sample campaign sends from example.com into a test Maildir.
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
    }


def enroll(project: Path, env: dict[str, str], count: int) -> None:
    write_csv(project / "people.csv", count)
    subprocess.run(
        [*DRIPLINE, "import", str(project / "people.csv"), "--campaign", "ketamine-therapy"],
        env=env,
        check=True,
        capture_output=True,
    )


def statuses(project: Path) -> Counter[str]:
    db = sqlite3.connect(project / "dripline.db")
    found = Counter(dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status")))
    db.close()
    return found


def outbox(project: Path) -> list[email.message.EmailMessage]:
    folder = project / "outbox" / "new"
    return (
        [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(folder.iterdir())
        ]
        if folder.is_dir()
        else []
    )


def test_two_workers_on_one_sqlite_file_send_each_delivery_once(project, env):
    enroll(project, env, 400)
    command = [*DRIPLINE, "run", "--once", "--now", "2026-03-05T20:00:30Z", "--batch", "10"]
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    messages = outbox(project)
    recipients = Counter(str(m["To"]) for m in messages)
    assert len(messages) == 400
    assert len(recipients) == 400 and set(recipients.values()) == {1}
    assert len({m["Message-ID"] for m in messages}) == 400
    assert statuses(project)["sent"] == 400
    # Both workers took part (each reports what it sent).
    assert all("sent " in out for out in outputs)


def terminate_after_first_email(project: Path, env: dict[str, str], *args: str) -> str:
    """Start `dripline ARGS`, send SIGTERM once the first email is in the outbox; its output."""
    process = subprocess.Popen(
        [*DRIPLINE, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    new = project / "outbox" / "new"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (new.is_dir() and any(new.iterdir())):
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    # Nothing left half-done, and it really stopped mid-way.
    counts = statuses(project)
    assert counts["sending"] == 0
    assert 0 < counts["sent"] == len(list(new.iterdir())) < 3000
    return output


def test_sigterm_finishes_the_message_in_flight_and_exits_cleanly(project, env):
    enroll(project, env, 3000)
    output = terminate_after_first_email(project, env, "run", "--tick", "0.2", "--batch", "50")
    assert "stopped cleanly" in output
    counts = statuses(project)
    assert counts["sent"] + counts["scheduled"] == 6 * 3000


def test_sigterm_during_a_single_pass_hands_back_what_was_not_sent(project, env):
    enroll(project, env, 3000)
    output = terminate_after_first_email(
        project, env, "run", "--once", "--now", "2026-03-05T20:00:30Z", "--batch", "3000"
    )
    assert "stopped by a signal" in output
    assert statuses(project)["sent"] + statuses(project)["scheduled"] == 6 * 3000


def test_an_import_killed_midway_keeps_whole_chunks_and_a_rerun_finishes_it(project, env):
    # Chunks of 5,000 people are transactions: after SIGKILL each person is there with
    # all six deliveries or not at all, and importing the file again adds only the rest.
    total = 60_000
    write_csv(project / "people.csv", total)
    env = {k: v for k, v in env.items() if k != "DRIPLINE_DATABASE_URL"}
    command = [*DRIPLINE, "import", str(project / "people.csv"), "--campaign", "ketamine-therapy"]
    importer = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def count(table: str) -> int:
        try:
            with sqlite3.connect(f"file:{project / 'dripline.db'}?mode=ro", uri=True) as db:
                return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            return 0

    deadline = time.monotonic() + 300
    while count("enrollments") == 0:
        assert importer.poll() is None, importer.stderr.read() if importer.stderr else ""
        assert time.monotonic() < deadline, "the import never committed a chunk"
        time.sleep(0.02)
    importer.send_signal(signal.SIGKILL)
    importer.wait(timeout=60)
    assert importer.returncode == -signal.SIGKILL
    people, enrolled, deliveries = count("subscribers"), count("enrollments"), count("deliveries")
    assert 0 < enrolled < total, "killed too late to show anything"
    assert people == enrolled and enrolled % 5000 == 0
    assert deliveries == 6 * enrolled
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"{total - enrolled} enrolled" in again.stdout
    assert f"{enrolled} already enrolled" in again.stdout
    with sqlite3.connect(project / "dripline.db") as db:
        assert db.execute(
            "SELECT count(*), count(DISTINCT email_key) FROM subscribers"
        ).fetchone() == (
            total,
            total,
        )
        assert db.execute(
            "SELECT count(*), count(DISTINCT enrollment_id || '-' || step) FROM deliveries"
        ).fetchone() == (6 * total, 6 * total)


def run_until(env: dict[str, str], wanted: str, count: int, *args: str) -> list[str]:
    """Start `dripline run ARGS`, stop it (SIGTERM) once ``wanted`` was printed ``count`` times."""
    process = subprocess.Popen(
        [*DRIPLINE, "run", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    deadline = time.monotonic() + 60
    while sum(wanted in line for line in list(lines)) < count:
        assert process.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    reader.join(10)
    return lines


def test_run_logs_one_line_per_pass_that_did_something_and_a_quiet_heartbeat(project, env):
    subprocess.run(
        [*DRIPLINE, "subscribe", "ana@example.com", "--campaign", "ketamine-therapy"],
        env=env,
        check=True,
        capture_output=True,
    )
    lines = run_until(env, "still running", 2, "--tick", "0.1", "--heartbeat", "0.5")
    text = "".join(lines)
    assert "apscheduler" not in text and "Running job" not in text, text
    passes = [line for line in lines if "claimed " in line]
    assert len(passes) == 1 and "sent 1," in passes[0], text
    heartbeats = [line for line in lines if "still running" in line]
    assert heartbeats[0].rstrip().endswith("nothing was due in the last 5 pass(es)")
    # Start-up lines, the pass that sent, two heartbeats, the clean stop: nothing per idle tick.
    expected = ("dripline run:", "registered", "claimed ", "still running", "signal 15")
    assert [line for line in lines if not any(k in line for k in expected)] == [], text
    assert len(outbox(project)) == 1


def test_run_verbose_shows_every_tick(project, env):
    lines = run_until(env, "nothing due", 3, "--tick", "0.1", "-v")
    text = "".join(lines)
    assert "apscheduler" in text and "Running job" in text
