"""`dripline event`: a goal's near miss is recorded but warned about (did you mean ...?)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from results_support import GOAL, cli, env_for, subscribe, track

from dripline.cli import main


def _recorded(project: Path) -> tuple[list[str], list[str]]:
    with sqlite3.connect(project / "dripline.db") as db:
        names = [r[0] for r in db.execute("SELECT name FROM events ORDER BY id")]
        statuses = [r[0] for r in db.execute("SELECT status FROM enrollments ORDER BY id")]
    return names, statuses


def test_a_goal_typo_is_recorded_with_a_did_you_mean_warning(project: Path) -> None:
    track(project, "https://example.org/landing")
    env = env_for(project, "https://news.example.com")
    subscribe(env, "ada@example.com", datetime.now(UTC) - timedelta(hours=1))
    typo = GOAL.title()  # "Booked-Consult" for "booked-consult"
    assert typo != GOAL
    runner = CliRunner(env=env)
    result = runner.invoke(main, ["event", "ada@example.com", typo, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["converted"] == []  # stdout stays JSON
    assert result.stderr.startswith("Warning: ")
    assert f"did you mean {GOAL!r}?" in result.stderr and repr(typo) in result.stderr
    assert _recorded(project) == ([typo], ["active"])  # still recorded, converts no one
    # Another misspelling, in text mode; then an unrelated event and the goal: no warning.
    out = cli(env, "event", "ada@example.com", GOAL.replace("-", "_"))
    assert out.count("Warning:") == 1 and f"did you mean {GOAL!r}?" in out
    for name in ("newsletter-opened", GOAL):
        out = cli(env, "event", "ada@example.com", name)
        assert "Warning" not in out and f"Recorded {name} for ada@example.com" in out
    names, statuses = _recorded(project)
    assert names == [typo, GOAL.replace("-", "_"), "newsletter-opened", GOAL]
    assert statuses == ["converted"]
