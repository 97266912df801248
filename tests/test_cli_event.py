"""`dripline event`: a goal's near miss is recorded but warned about (did you mean ...?)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from results_support import API_TOKEN, GOAL, SLUG, cli, env_for, subscribe, track
from starlette.testclient import TestClient

from dripline.cli import main
from dripline.serve import create_app
from dripline.settings import load_settings


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


def test_hostile_event_input_is_a_clear_error_by_cli_and_api(project: Path) -> None:
    """Nesting deeper than the JSON parser recurses, and dates that overflow when made UTC:
    one line / a 400 naming the field, nothing stored, no traceback."""
    track(project, "https://example.org/landing")
    env = env_for(project, "https://news.example.com")
    subscribe(env, "ada@example.com", datetime.now(UTC) - timedelta(hours=1))
    deep = '{"a":' + "[" * 5000 + "]" * 5000 + "}"
    result = CliRunner(env=env).invoke(main, ["event", "ada@example.com", "x", "--json-data", deep])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == "Error: --json-data: not JSON (nested too deeply)"
    app = create_app(load_settings(environ=env))
    auth = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    with TestClient(app, raise_server_exceptions=False) as client:
        body = '{"email":"ada@example.com","event":"x","data":' + "[" * 15000 + "]" * 15000 + "}"
        answer = client.post("/api/events", content=body, headers=auth)
        assert answer.status_code == 400, answer.text
        assert "nested too deeply" in answer.json()["error"]
        for at in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "1900-01-01T00:00Z"):
            body = json.dumps({"email": "ada@example.com", "event": GOAL, "at": at})
            answer = client.post("/api/events", content=body, headers=auth)
            assert answer.status_code == 400, (at, answer.text)
            assert answer.json()["error"] == f"at: {at!r} is outside the years 1970 to 9000"
    assert _recorded(project) == ([], ["active"])


def test_an_event_while_the_persons_campaign_does_not_load_is_refused_for_a_retry(
    project: Path,
) -> None:
    """campaign.toml broken mid-edit: its goal is unknown, so the event is refused (CLI
    error, API 503) and nothing is recorded; once the file is fixed the same event converts."""
    track(project, "https://example.org/landing")
    env = env_for(project, "https://news.example.com")
    subscribe(env, "ada@example.com", datetime.now(UTC) - timedelta(hours=1))
    toml = project / "campaigns" / SLUG / "campaign.toml"
    good = toml.read_text(encoding="utf-8")
    toml.write_text(good + "\nthis is = = broken\n", encoding="utf-8")
    result = CliRunner(env=env).invoke(main, ["event", "ada@example.com", GOAL])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith(f"Error: campaign '{SLUG}' does not load")
    assert "campaign.toml" in result.output
    app = create_app(load_settings(environ=env))
    auth = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    body = json.dumps({"email": "ada@example.com", "event": GOAL, "id": "B-1"})
    with TestClient(app) as client:
        answer = client.post("/api/events", content=body, headers=auth)
        assert answer.status_code == 503 and "does not load" in answer.json()["error"]
        assert _recorded(project) == ([], ["active"])
        toml.write_text(good, encoding="utf-8")
        answer = client.post("/api/events", content=body, headers=auth)
        assert answer.status_code == 201 and answer.json()["converted"] == [SLUG]
    assert _recorded(project) == ([GOAL], ["converted"])
