"""Every option error names the option the user typed (dripline/cli/_options.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dripline.cli import main

DRIPLINE = str(Path(sys.executable).with_name("dripline"))
ARTICLE = Path(__file__).resolve().parent / "fixtures" / "articles" / "walking-numbered.txt"


def test_demo_start_names_start_not_now(project: Path):
    done = subprocess.run(
        [DRIPLINE, "--root", str(project), "demo", "--start", "yesterday"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == (
        "Error: --start: not an ISO 8601 date and time: 'yesterday' (e.g. 2026-03-05T09:00:00Z)\n"
    )
    assert not (project / "demo" / "dripline.db").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--once", "--now", "soon"], "Error: --now: not an ISO 8601 date and time"),
        (["run", "--once", "--now", "0001-01-01T00:00Z"], "Error: --now: '0001-01-01T00:00Z'"),
        (["demo", "--start", "3000000"], "Error: --start: not an ISO 8601"),
        (
            ["subscribe", "a@example.com", "--campaign", "ketamine-therapy", "--tz", "Mars/Base"],
            "Error: --tz: unknown time zone 'Mars/Base'",
        ),
        (
            ["subscribe", "a@example.com", "--campaign", "ketamine-therapy", "--at", "noon"],
            "Error: --at: not an ISO 8601",
        ),
        (
            ["subscribe", "a@example.com", "--campaign", "ketamine-therapy", "--name", "A\nB"],
            "Error: --name: a name must be one line",
        ),
        (
            ["send-test", "ketamine-therapy", "--to", "nobody", "--sender", "memory:x"],
            "Error: --to: not an email address",
        ),
        (
            ["import-article", str(ARTICLE), "--slug", "Walking Tips"],
            "Error: --slug: the slug 'Walking Tips' may only use a-z, 0-9 and '-'",
        ),
    ],
)
def test_each_option_error_names_its_option(project: Path, args, expected):
    env = {"DRIPLINE_SECRET_KEY": "test-secret", "DRIPLINE_DATABASE_URL": None}
    result = CliRunner(env=env).invoke(main, ["--root", str(project), *args])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(expected), result.output
    assert "Traceback" not in result.output
    assert not (project / "dripline.db").exists()  # a bad option writes nothing
