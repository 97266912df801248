"""`dripline check --json`: every finding as an object with the keys docs/preflight.md lists."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from dripline.cli import main

ROOT = Path(__file__).resolve().parent.parent
TYPES = {
    "string": str,
    "integer": int,
    "null": type(None),
    "array of strings": list,
}


def documented_keys() -> dict[str, tuple[type, ...]]:
    """The key table of docs/preflight.md's --json section: key -> allowed Python types."""
    section = (ROOT / "docs" / "preflight.md").read_text(encoding="utf-8")
    section = section.split("## `dripline check --json`", 1)[1].split("\n## ", 1)[0]
    keys = {}
    for key, kind in re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, re.M):
        keys[key] = tuple(TYPES[part.strip()] for part in kind.split(" or "))
    return keys


def test_json_output_validates_against_the_documented_keys(project):
    keys = documented_keys()
    assert set(keys) >= {"campaign", "step", "file", "line", "rule", "severity", "message"}
    step = project / "campaigns" / "ketamine-therapy" / "03-neuroplasticity.md"
    step.write_text(
        step.read_text(encoding="utf-8")
        + '\n<div style="display:flex">Row</div>\n\n[click here](https://example.com/a)\n'
        + "\n[bad](ftp://example.com/x)\n",
        encoding="utf-8",
    )
    broken = project / "campaigns" / "broken"
    broken.mkdir()
    (broken / "campaign.toml").write_text('name = "Broken"\n[from\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["--root", str(project), "check", "--json"])
    assert result.exit_code == 1  # the ftp link and the broken campaign are errors
    findings = json.loads(result.stdout)
    assert isinstance(findings, list) and findings
    for finding in findings:
        assert set(finding) == set(keys), finding
        for key, value in finding.items():
            assert isinstance(value, keys[key]), (key, value)
        assert finding["severity"] in ("error", "warning", "info")
        assert all(isinstance(c, str) for c in finding["clients"])
    rules = {(f["campaign"], f["rule"]) for f in findings}
    assert {
        ("ketamine-therapy", "client-support"),
        ("ketamine-therapy", "a11y-link-text"),
        ("ketamine-therapy", "link-scheme"),
        ("ketamine-therapy", "subject-length"),
        ("broken", "load"),
    } <= rules
    load = next(f for f in findings if f["campaign"] == "broken")
    assert load["file"] == str(broken / "campaign.toml") and load["line"] == 2
    assert load["step"] is None and load["clients"] == []


def test_json_mode_prints_nothing_but_the_document(project):
    result = CliRunner().invoke(main, ["--root", str(project), "check", "--json"])
    assert result.exit_code == 0
    assert result.stdout.lstrip().startswith("[") and result.stdout.rstrip().endswith("]")
    json.loads(result.stdout)


def test_json_mode_stays_json_when_there_is_nothing_to_check(project, tmp_path):
    # CI pipes stdout into a JSON parser: an unknown slug or an empty campaigns/ folder
    # is an error on stderr and exit 1, with an empty array on stdout, not nothing.
    result = CliRunner().invoke(main, ["--root", str(project), "check", "--json", "nosuch"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == []
    assert result.stderr.startswith("Error: no campaign 'nosuch' under ")
    empty = tmp_path / "empty"
    (empty / "campaigns").mkdir(parents=True)
    result = CliRunner().invoke(main, ["--root", str(empty), "check", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == []
    assert result.stderr.startswith("Error: no campaigns under ")
    # Without --json: the error alone, as before.
    plain = CliRunner().invoke(main, ["--root", str(project), "check", "nosuch"])
    assert plain.exit_code == 1 and plain.stdout == ""
    assert plain.stderr.startswith("Error: no campaign 'nosuch' under ")
