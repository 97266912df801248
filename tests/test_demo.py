"""`dripline demo`: every sample subscriber gets the six emails, in order, at 09:00 local."""

from __future__ import annotations

import email
import email.policy
import json
import shlex
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from dripline.cli import main
from dripline.demo import DEMO_PEOPLE


def test_demo_sends_the_whole_sequence_on_local_time(project: Path):
    result = CliRunner(env={"DRIPLINE_SECRET_KEY": ""}).invoke(
        main, ["--root", str(project), "demo", "--start", "2026-03-05T20:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    assert "24 emails are in the Maildir" in result.output
    by_person: dict[str, list[email.message.EmailMessage]] = defaultdict(list)
    for path in (project / "demo" / "outbox" / "new").iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        by_person[message["To"].addresses[0].addr_spec].append(message)
    zones = {address: zone for address, _, zone in DEMO_PEOPLE}
    assert set(by_person) == set(zones)
    for address, messages in by_person.items():
        messages.sort(key=lambda m: m["Date"].datetime)
        subjects = [m["Subject"] for m in messages]
        assert subjects == [
            f"Reason {k} of 6: " + s.split(": ", 1)[1] for k, s in enumerate(subjects, start=1)
        ]
        local = [m["Date"].datetime.astimezone(ZoneInfo(zones[address])) for m in messages]
        for when in local[1:]:
            assert (when.hour, when.minute) == (9, 0)
            assert when.weekday() < 5  # Monday to Friday
        days = [when.date() for when in local]
        assert days == sorted(set(days))  # one email a day at most, in order
    # The demo keeps its own signing key and database under demo/.
    assert (project / "demo" / "secret_key").is_file()
    assert (project / "demo" / "dripline.db").is_file()


def test_demo_runs_again_from_scratch(project: Path):
    for _ in range(2):
        result = CliRunner().invoke(main, ["--root", str(project), "demo"])
        assert result.exit_code == 0, result.output
    assert len(list((project / "demo" / "outbox" / "new").iterdir())) == 24


def test_demo_prints_the_commands_that_read_its_own_database_and_outbox(project: Path, monkeypatch):
    monkeypatch.chdir(project)
    result = CliRunner(env={"DRIPLINE_SECRET_KEY": "", "DRIPLINE_ROOT": None}).invoke(
        main, ["demo", "--start", "2026-03-05T20:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = lines.index("Look inside (the demo's own database and outbox, not ./dripline.db):")
    commands = [line.strip() for line in lines[at + 1 :]]
    assert commands == [
        "dripline status ketamine-therapy --db demo/dripline.db",
        "dripline timeline ketamine-therapy --email maria@example.com --db demo/dripline.db",
        "ls demo/outbox/new",
        "mutt -f demo/outbox",
    ]
    # Run as printed: they read the demo's data, and create no ./dripline.db.
    status = CliRunner().invoke(main, shlex.split(commands[0])[1:])
    assert status.exit_code == 0, status.output
    assert "4 enrolled" in status.output
    timeline = CliRunner().invoke(main, [*shlex.split(commands[1])[1:], "--json"])
    assert timeline.exit_code == 0, timeline.output
    assert [row["status"] for row in json.loads(timeline.output)] == ["sent"] * 6
    assert len(list((project / shlex.split(commands[2])[1]).iterdir())) == 24
    assert not (project / "dripline.db").exists()


def test_demo_commands_name_the_project_when_run_from_elsewhere(
    project: Path, tmp_path_factory, monkeypatch
):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(main, ["--root", str(project), "demo"])
    assert result.exit_code == 0, result.output
    assert f"dripline --root {project} status ketamine-therapy --db " in result.output
    status_line = next(ln for ln in result.output.splitlines() if " status " in ln).strip()
    status = CliRunner().invoke(main, shlex.split(status_line)[1:])
    assert status.exit_code == 0 and "4 enrolled" in status.output
