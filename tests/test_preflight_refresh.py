"""`python -m dripline.preflight.refresh`: rebuilds the caniemail snapshot from a checkout."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from dripline.preflight.refresh import SNAPSHOT

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "caniemail"


def refresh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dripline.preflight.refresh", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_refresh_keeps_the_latest_support_and_the_notes_it_needs(tmp_path):
    out = tmp_path / "caniemail.json"
    done = refresh(str(FIXTURE), "--commit", "abc123", "--date", "2026-06-29", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "2 features, commit abc123 of 2026-06-29" in done.stdout
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["commit"] == "abc123" and data["date"] == "2026-06-29"
    assert data["source"] == "https://github.com/hteumeuleu/caniemail"
    assert set(data["features"]) == {"css-display-flex", "html-quirks"}  # "amp" is no HTML/CSS
    flex = data["features"]["css-display-flex"]
    assert flex["title"] == "display:flex" and flex["category"] == "css"
    assert flex["support"]["outlook.windows"] == "n"
    assert flex["support"]["gmail.ios"] == "a #1"  # 2019 "y", then "a #1" since 2020
    # Tabs, trailing commas, bare values and "---" inside a string all read as Jekyll reads them.
    quirks = data["features"]["html-quirks"]
    assert quirks["support"] == {"outlook.windows": "a #2", "gmail.ios": "n"}
    assert quirks["notes"] == {
        "2": 'Partial. See [docs](https://example.com/web-workshop---fill) and "quotes".'
    }
    assert data["names"]["family"]["outlook"] == "Outlook"
    assert data["names"]["platform"]["outlook-com"] == "Outlook.com"


def test_refresh_refuses_a_folder_that_is_no_caniemail_checkout(tmp_path):
    done = refresh(str(tmp_path), "--out", str(tmp_path / "x.json"))
    assert done.returncode == 1
    assert done.stderr.strip() == f"Error: {tmp_path} has no _features/ folder"
    assert not (tmp_path / "x.json").exists()


def test_a_malformed_feature_file_is_named(tmp_path):
    (tmp_path / "_features").mkdir()
    bad = tmp_path / "_features" / "css-bad.md"
    bad.write_text('---\ntitle: "Bad"\ncategory: css\nstats: {\n  gmail: { ios "y" }\n}\n---\n')
    done = refresh(str(tmp_path), "--out", str(tmp_path / "x.json"))
    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: {bad}: stats:")
    assert "Traceback" not in done.stderr


def test_the_shipped_snapshot_has_the_features_check_relies_on():
    data = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert len(data["features"]) > 250
    assert data["features"]["css-position"]["support"]["outlook.windows"].startswith("n")
    assert "outlook.windows" in data["clients"]


def test_a_quoted_notes_key_keeps_its_notes(tmp_path):
    # caniemail's html-lists.md writes '"notes_by_num": {' with the key in quotes.
    (tmp_path / "_features").mkdir()
    (tmp_path / "_features" / "html-lists.md").write_text(
        '---\ntitle: "<ul>, <ol> and <dl>"\ncategory: html\nstats: {\n\toutlook: {\n'
        '\t\twindows: {\n\t\t\t"2023-01": "a #1 #2"\n\t\t}\n\t}\n}\n"notes_by_num": {\n'
        '\t"1": "Partial. The `reversed` attribute on `<ol>` is not supported.",\n'
        '\t"2": "Partial. `value` on `<li>` restarts the list."\n}\n---\n',
        encoding="utf-8",
    )
    out = tmp_path / "x.json"
    done = refresh(str(tmp_path), "--commit", "c", "--date", "2026-01-01", "--out", str(out))
    assert done.returncode == 0, done.stderr
    lists = json.loads(out.read_text(encoding="utf-8"))["features"]["html-lists"]
    assert set(lists["notes"]) == {"1", "2"}
    assert "reversed" in lists["notes"]["1"]


def test_every_note_the_shipped_snapshot_points_at_is_in_it():
    data = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    missing = [
        (slug, client, number)
        for slug, feature in data["features"].items()
        for client, value in feature["support"].items()
        for number in re.findall(r"#(\d+)", value)
        if number not in feature["notes"]
    ]
    # caniemail's css-pseudo-class-link.md points at a note #1 it never writes.
    assert {slug for slug, _, _ in missing} <= {"css-pseudo-class-link"}
    assert "reversed" in data["features"]["html-lists"]["notes"]["1"]
