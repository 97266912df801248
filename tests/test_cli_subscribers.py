"""subscribe, import, unsubscribe, timeline, status: run as a user would, on a real SQLite file."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dripline.cli import main

ROOT = Path(__file__).resolve().parent.parent
SLUG = "ketamine-therapy"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("DRIPLINE_DATABASE_URL", "DRIPLINE_ROOT", "DRIPLINE_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    shutil.copytree(ROOT / "campaigns", tmp_path / "campaigns")
    return tmp_path


def run(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--root", str(project), *args], catch_exceptions=False)


def db_rows(project: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(project / "dripline.db") as conn:
        return conn.execute(sql).fetchall()


def test_db_upgrade_creates_the_default_database_in_the_project(project: Path):
    first = run(project, "db", "upgrade")
    assert first.exit_code == 0, first.output
    assert "upgraded from empty" in first.output
    assert (project / "dripline.db").is_file()
    assert "schema is current" in run(project, "db", "upgrade").output


def test_db_flag_points_elsewhere(project: Path, tmp_path: Path):
    other = tmp_path / "elsewhere.db"
    result = run(
        project, "subscribe", "a@example.com", "--campaign", SLUG, "--db", f"sqlite:///{other}"
    )
    assert result.exit_code == 0, result.output
    assert other.is_file() and not (project / "dripline.db").exists()


def test_subscribe_then_timeline_json_is_the_worked_example(project: Path):
    result = run(
        project,
        "subscribe",
        "Ada@Example.COM",
        "--campaign",
        SLUG,
        "--name",
        "Ada Lovelace",
        "--tz",
        "America/Los_Angeles",
        "--at",
        "2026-03-05T20:00",
    )
    assert result.exit_code == 0, result.output
    timeline = run(project, "timeline", SLUG, "--email", "ada@example.com", "--json")
    entries = json.loads(timeline.output)
    assert [e["step"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert [e["due_local"] for e in entries] == [
        "2026-03-05T20:00:00-08:00",
        "2026-03-09T09:00:00-07:00",
        "2026-03-10T09:00:00-07:00",
        "2026-03-11T09:00:00-07:00",
        "2026-03-13T09:00:00-07:00",
        "2026-03-16T09:00:00-07:00",
    ]
    assert entries[1]["due_utc"] == "2026-03-09T16:00:00+00:00"
    assert entries[0]["subject"].startswith("Reason 1 of 6")
    assert {e["status"] for e in entries} == {"scheduled"}
    # Case-insensitive identity: subscribing again changes nothing.
    again = run(project, "subscribe", "ADA@example.com", "--campaign", SLUG)
    assert "Already subscribed" in again.output
    assert db_rows(project, "select count(*) from deliveries") == [(6,)]
    assert db_rows(project, "select email_key, first_name from subscribers") == [
        ("ada@example.com", "Ada")
    ]


def test_unsubscribe_cancels_pending_and_status_counts_it(project: Path):
    run(project, "subscribe", "a@example.com", "--campaign", SLUG)
    run(project, "subscribe", "b@example.com", "--campaign", SLUG)
    result = run(project, "unsubscribe", "A@example.com")
    assert result.exit_code == 0, result.output
    assert "6 pending" in result.output
    status = json.loads(run(project, "status", SLUG, "--json").output)
    assert (status["enrolled"], status["unsubscribed"], status["bounced"]) == (2, 1, 0)
    assert [
        (s["step"], s["scheduled"], s["cancelled"], s["sent"], s["failed"]) for s in status["steps"]
    ] == [(n, 1, 1, 0, 0) for n in range(1, 7)]
    table = run(project, "status").output
    assert "2 enrolled, 1 unsubscribed" in table


def test_unknown_subscriber_and_campaign_are_clear_errors(project: Path):
    result = CliRunner().invoke(main, ["--root", str(project), "unsubscribe", "x@example.com"])
    assert result.exit_code == 1
    assert "Error: x@example.com is not a subscriber" in result.output
    result = CliRunner().invoke(main, ["--root", str(project), "status", "nope"])
    assert result.exit_code == 1 and "no campaign 'nope'" in result.output


CSV = """email,name,timezone,subscribed_at,plan
good1@example.com,Ann One,Europe/London,2026-03-02T10:00,gold
not-an-address,Bad Address,UTC,2026-03-02T10:00,x
good2@example.com,Bob Two,,2026-03-02T10:00,silver
good3@example.com,Cy Three,Mars/Olympus,2026-03-02T10:00,x
good4@example.com,Di Four,Asia/Kolkata,yesterday,x
"Mueller@Bücher.de","Eve, Five",Asia/Kolkata,2026-03-02T10:00+05:30,bronze
GOOD1@example.com,Ann Again,UTC,2026-03-03T10:00,dup
"""


def test_import_reports_bad_rows_by_line_and_imports_the_rest(project: Path):
    csv_file = project / "people.csv"
    csv_file.write_text(CSV, encoding="utf-8")
    result = CliRunner().invoke(
        main, ["--root", str(project), "import", str(csv_file), "--campaign", SLUG]
    )
    assert result.exit_code == 1
    assert f"{csv_file}:3: not an email address" in result.output
    assert f"{csv_file}:5: unknown time zone 'Mars/Olympus'" in result.output
    assert f"{csv_file}:6: not an ISO 8601 date/time: 'yesterday'" in result.output
    assert "3 enrolled" in result.output
    people = db_rows(
        project, "select email, name, timezone, attributes from subscribers order by id"
    )
    assert [(e, n, z) for e, n, z, _ in people] == [
        ("good1@example.com", "Ann One", "Europe/London"),
        ("good2@example.com", "Bob Two", None),
        ("Mueller@xn--bcher-kva.de", "Eve, Five", "Asia/Kolkata"),
    ]
    assert [json.loads(a) for *_, a in people] == [
        {"plan": "gold"},
        {"plan": "silver"},
        {"plan": "bronze"},
    ]
    # Naive subscribed_at is local to the row's zone: 10:00 London = 10:00 UTC in March.
    assert db_rows(project, "select enrolled_at from enrollments order by id")[0][0].startswith(
        "2026-03-02 10:00"
    )
    before = db_rows(project, "select * from deliveries order by id")
    assert len(before) == 18
    again = CliRunner().invoke(
        main, ["--root", str(project), "import", str(csv_file), "--campaign", SLUG]
    )
    assert "0 enrolled" in again.output and "3 already enrolled" in again.output
    assert db_rows(project, "select * from deliveries order by id") == before
    assert db_rows(project, "select count(*) from subscribers") == [(3,)]


def test_subscription_times_off_the_calendar_are_their_rows_problem_not_a_traceback(
    project: Path,
):
    csv_file = project / "people.csv"
    csv_file.write_text(
        "email,timezone,subscribed_at\n"
        "tokyo@example.com,Asia/Tokyo,0001-01-01T00:00\n"  # before year 1 in UTC
        "chicago@example.com,America/Chicago,9999-12-31T23:00\n"  # after 9999 in UTC
        "late@example.com,,9999-12-25\n"  # steps would be due after 9999
        "ok@example.com,,2026-03-02T10:00\n",
        encoding="utf-8",
    )
    result = run(project, "import", str(csv_file), "--campaign", SLUG)
    assert result.exit_code == 1
    for line, value in ((2, "0001-01-01T00:00"), (3, "9999-12-31T23:00"), (4, "9999-12-25")):
        assert (
            f"Error: {csv_file}:{line}: the subscription time '{value}' is outside the years "
            "1970 to 9000"
        ) in result.output
    assert "1 enrolled" in result.output
    assert db_rows(project, "select email from subscribers") == [("ok@example.com",)]
    at = run(project, "subscribe", "z@example.com", "--campaign", SLUG, "--at", "9999-12-31T23:00")
    assert at.exit_code == 1
    assert at.output == (
        "Error: --at: the subscription time '9999-12-31T23:00' is outside the years 1970 to 9000\n"
    )


def test_import_without_email_column_names_the_file_and_line(project: Path):
    csv_file = project / "people.csv"
    csv_file.write_text("mail,name\nx@example.com,X\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["--root", str(project), "import", str(csv_file), "--campaign", SLUG]
    )
    assert result.exit_code == 1
    assert f"Error: {csv_file}:1: no 'email' column" in result.output


def test_status_hands_back_a_dead_workers_rows_and_requeue_resends_ambiguous(project: Path):
    run(project, "subscribe", "a@example.com", "--campaign", SLUG)
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid is free now: a worker that was killed
    now = datetime.now(UTC).replace(tzinfo=None)
    with sqlite3.connect(project / "dripline.db") as conn:
        for worker_id, pid in ((1, finished.pid), (2, os.getpid())):
            conn.execute(
                "insert into workers values (?, ?, ?, ?, ?, ?)",
                (
                    worker_id,
                    socket.gethostname(),
                    pid,
                    str(now),
                    str(now),
                    str(now + timedelta(minutes=5)),
                ),
            )
        conn.execute(
            "update deliveries set status = 'sending', worker_id = 1, attempted_at = ? "
            "where step = 1",
            (str(now),),
        )
        conn.execute("update deliveries set status = 'claimed', worker_id = 1 where step = 2")
        conn.execute("update deliveries set status = 'claimed', worker_id = 2 where step = 3")
    table = run(project, "status", SLUG).output
    assert "1 delivery(ies) 'ambiguous'" in table and "dripline requeue --ambiguous" in table
    steps = json.loads(run(project, "status", SLUG, "--json").output)["steps"]
    assert (steps[0]["ambiguous"], steps[1]["scheduled"], steps[2]["claimed"]) == (1, 1, 1)
    assert steps[0]["claimed"] == steps[0]["sending"] == 0

    refused = CliRunner().invoke(main, ["--root", str(project), "requeue"])
    assert refused.exit_code == 1 and "Error: say what to requeue: --ambiguous" in refused.output
    bad = CliRunner().invoke(
        main, ["--root", str(project), "requeue", "--ambiguous", "--older-than", "soon"]
    )
    assert bad.exit_code == 1 and "not a duration" in bad.output
    # Past what a date can hold: one clear error, not an OverflowError traceback.
    for huge in ("99999999999d", "999999d", "1e309d"):
        huge_run = CliRunner().invoke(
            main, ["--root", str(project), "requeue", "--ambiguous", "--older-than", huge]
        )
        assert huge_run.exit_code == 1 and huge_run.output.startswith("Error: --older-than:"), (
            huge,
            huge_run.output,
        )
        assert isinstance(huge_run.exception, SystemExit)  # not an OverflowError
    young = run(project, "requeue", "--ambiguous", SLUG, "--older-than", "1h").output
    assert "Requeued 0" in young
    assert "Requeued 1 ambiguous delivery(ies):" in run(project, "requeue", "--ambiguous").output
    steps = json.loads(run(project, "status", SLUG, "--json").output)["steps"]
    assert (steps[0]["ambiguous"], steps[0]["scheduled"]) == (0, 1)


@pytest.mark.parametrize("command", [["status"], ["timeline", SLUG, "--email", "a@example.com"]])
def test_read_only_commands_never_create_a_database(project: Path, command):
    result = CliRunner().invoke(main, ["--root", str(project), *command])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: no database at {project / 'dripline.db'}")
    assert "--db demo/dripline.db after `dripline demo`" in result.output
    assert not (project / "dripline.db").exists()
    elsewhere = project / "other.db"
    result = CliRunner().invoke(main, ["--root", str(project), *command, "--db", str(elsewhere)])
    assert result.exit_code == 1 and not elsewhere.exists()


def test_db_accepts_a_plain_file_path(project: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(project)
    added = run(project, "subscribe", "a@example.com", "--campaign", SLUG, "--db", "people.db")
    assert added.exit_code == 0, added.output
    assert (project / "people.db").is_file() and not (project / "dripline.db").exists()
    with sqlite3.connect(project / "people.db") as conn:
        assert conn.execute("SELECT email FROM subscribers").fetchall() == [("a@example.com",)]
    status = run(project, "status", SLUG, "--json", "--db", "people.db")
    assert json.loads(status.output)["enrolled"] == 1
    url = run(project, "status", SLUG, "--json", "--db", f"sqlite:///{project / 'people.db'}")
    assert json.loads(url.output)["enrolled"] == 1


def test_fixed_offset_zones_are_accepted_with_a_warning_naming_a_place(project: Path):
    result = run(project, "subscribe", "est@example.com", "--campaign", SLUG, "--tz", "EST")
    assert result.exit_code == 0, result.output
    assert "Warning: --tz: time zone 'EST' is a fixed UTC offset with no daylight saving" in (
        result.output
    )
    assert "use America/New_York" in result.output
    assert db_rows(project, "select timezone from subscribers") == [("EST",)]
    csv_file = project / "people.csv"
    csv_file.write_text(
        "email,tz\na@example.com,Etc/GMT+5\nb@example.com,Etc/GMT+5\nc@example.com,Europe/Oslo\n",
        encoding="utf-8",
    )
    imported = run(project, "import", str(csv_file), "--campaign", SLUG)
    assert imported.exit_code == 0, imported.output
    warnings = [line for line in imported.output.splitlines() if line.startswith("Warning:")]
    assert warnings == [
        f"Warning: {csv_file}:2: time zone 'Etc/GMT+5' is a fixed UTC offset with no "
        "daylight saving (and it is UTC-5: the sign of Etc/GMT names is inverted); use the "
        "Area/City name of the place, e.g. America/New_York (first of its rows)"
    ]


def test_subscribe_greets_by_the_parsed_first_name_and_refuses_non_ascii_local_parts(
    project: Path,
):
    result = run(
        project, "subscribe", "chidi@example.com", "--campaign", SLUG, "--name", "Okafor, Chidi"
    )
    assert result.exit_code == 0, result.output
    assert db_rows(project, "select name, first_name from subscribers") == [
        ("Okafor, Chidi", "Chidi")
    ]
    refused = CliRunner().invoke(
        main, ["--root", str(project), "subscribe", "zoë@example.com", "--campaign", SLUG]
    )
    assert refused.exit_code == 1
    assert "Error: cannot send to 'zoë@example.com': the part before the @ is not ASCII" in (
        refused.output
    )
    assert "Traceback" not in refused.output


def test_subscribing_again_shows_what_will_really_happen(project: Path, tmp_path: Path):
    """Step 1 sent, then the goal reached: subscribing again lists step 1 as sent and the
    rest as cancelled, says why, and shows no date as if it were still coming."""
    shutil.copytree(ROOT / "templates", project / "templates")
    toml = project / "campaigns" / SLUG / "campaign.toml"
    toml.write_text(toml.read_text() + '\n[goal]\nevent = "booked-consult"\n')
    env = {
        "DRIPLINE_SECRET_KEY": "subscribe-test-secret-0123456789",
        "DRIPLINE_BASE_URL": "https://news.example.com",
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
    }
    at = datetime.now(UTC) - timedelta(days=1)

    def cli(*args: str) -> str:
        result = CliRunner(env=env).invoke(main, ["--root", str(project), *args])
        assert result.exit_code == 0, result.output
        return result.output

    cli("subscribe", "ada@example.com", "--campaign", SLUG, "--tz", "UTC", "--at", at.isoformat())
    outbox = tmp_path / "outbox"
    cli("run", "--once", "--sender", f"maildir:{outbox}")
    assert len(list((outbox / "new").iterdir())) == 1
    cli("event", "ada@example.com", "booked-consult")
    again = cli("subscribe", "ada@example.com", "--campaign", SLUG)
    lines = again.splitlines()
    assert lines[0] == f"Already subscribed: ada@example.com to {SLUG} (UTC)"
    steps = [line.split()[:2] for line in lines[1:7]]
    assert steps == [["1", "sent"]] + [[str(n), "cancelled"] for n in range(2, 7)]
    assert lines[7].startswith("Nothing more will be sent: converted on ")
    assert lines[7].endswith("(goal 'booked-consult').")
    assert " due " not in again
    # Someone still in the sequence sees their next dates as due.
    cli("subscribe", "bob@example.com", "--campaign", SLUG, "--tz", "UTC")
    bob = cli("subscribe", "bob@example.com", "--campaign", SLUG).splitlines()
    assert [line.split()[1] for line in bob[1:7]] == ["due"] * 6 and len(bob) == 7


# Jinja folds a constant expression while it compiles a template: a trillion empty
# slices summed make the step's compile itself run away, before any render.
RUNAWAY_COMPILE = '\n{{ "x" | slice(1000000000000) | sum(start=[]) }}\n'


def test_subscribe_to_a_campaign_whose_step_compile_runs_away_ends_within_the_budget(
    tmp_path: Path,
):
    """`dripline subscribe` records what the campaign looks like (every step rendered
    once): a step that runs away while it compiles is recorded as one that cannot render
    within the render budget, and the subscriber is enrolled all the same."""
    shutil.copytree(ROOT / "campaigns", tmp_path / "campaigns")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    step = tmp_path / "campaigns" / SLUG / "01-rapid-relief.md"
    step.write_text(step.read_text() + RUNAWAY_COMPILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIPLINE_")}
    env["DRIPLINE_RENDER_BUDGET"] = "1"
    args = ["--root", str(tmp_path), "subscribe", "a@example.com", "--campaign", SLUG]
    # A hang (the compile never ends) fails here, at the timeout, rather than holding CI.
    done = subprocess.run(
        [sys.executable, "-m", "dripline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Subscribed a@example.com" in done.stdout
    line = step.read_text().splitlines().index(RUNAWAY_COMPILE.strip()) + 1
    assert done.stderr.startswith(
        f"Warning: step 1: cannot render: {step}:{line}: compiling 01-rapid-relief.md took "
        "longer than 1 s"
    ), done.stderr
    assert db_rows(tmp_path, "SELECT count(*) FROM deliveries WHERE status = 'scheduled'") == [(6,)]
    (state,) = db_rows(tmp_path, "SELECT state FROM campaign_revisions")
    first = json.loads(state[0])["steps"][0]
    assert first["text"].startswith(f"(cannot render: {step}:"), first["text"]
    assert "compiling 01-rapid-relief.md took longer than 1 s" in first["text"]
