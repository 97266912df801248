"""`dripline history EMAIL [--json]` on addresses and databases that are not there."""

from __future__ import annotations

import json
from pathlib import Path

from edit_support import SLUG, dripline, project_env


def test_unknown_address_with_json_keeps_stdout_json(project: Path, sqlite_url: str):
    env = project_env(project, sqlite_url)
    dripline(env, "subscribe", "known@example.com", "--campaign", SLUG, "--at", "2026-03-02T08:00")
    done = dripline(env, "history", "nobody@example.com", "--json", ok=(1,))
    assert json.loads(done.stdout) == []
    assert done.stderr == "Error: nobody@example.com is not a subscriber\n"
    text = dripline(env, "history", "nobody@example.com", ok=(1,))
    assert text.stdout == "" and "Error: nobody@example.com is not a subscriber" in text.stderr


def test_missing_database_is_an_error_and_is_not_created(project: Path, tmp_path: Path):
    missing = tmp_path / "missing.sqlite"
    env = project_env(project, f"sqlite:///{tmp_path / 'dripline.db'}")
    done = dripline(env, "history", "a@example.com", "--json", "--db", str(missing), ok=(1,))
    assert json.loads(done.stdout) == []
    assert done.stderr.startswith(f"Error: no database at {missing}")
    assert not missing.exists()
