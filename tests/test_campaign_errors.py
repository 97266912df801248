"""Bad campaign files: one clear message naming the file and line, exit 1, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dripline.cli import main

STEP = "campaigns/ketamine-therapy/02-treatment-resistant.md"
TOML = "campaigns/ketamine-therapy/campaign.toml"


def run_check(project: Path, *args: str):
    return CliRunner().invoke(main, ["--root", str(project), "check", *args])


def edit(project: Path, name: str, old: str, new: str) -> Path:
    path = project / name
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


CASES = [
    # (file, old, new, expected line, words in the message)
    (TOML, 'name = "Top 6', 'name = "Top 6 unclosed\nlayout = ', 3, "invalid TOML"),
    (
        STEP,
        'subject = "Reason 2 of 6: High efficacy in treatment-resistant cases"\n',
        "",
        2,
        "missing subject",
    ),
    (TOML, 'layout = "base"', 'layout = "fancy"', 4, "unknown layout 'fancy'"),
    (STEP, "day = 2", "day = 0", 4, "day offsets out of order"),
    # Past the calendar's end a step cannot be scheduled (it was an OverflowError traceback).
    (STEP, "day = 2", "day = 99999999", 4, "day must be at most 36,500"),
    (
        TOML,
        'timezone = "America/Los_Angeles"',
        'timezone = "Mars/Olympus_Mons"',
        None,
        "unknown time zone 'Mars/Olympus_Mons'",
    ),
    (
        STEP,
        "## High Efficacy",
        "{% if subscriber.first_name %}\n\n## High Efficacy",
        None,
        "template error",
    ),
    (STEP, "Hi {{ subscriber.first_name", "Hi {{ subscriber.first_name )", None, "template error"),
    # Two steps with one identity: deliveries could not tell them apart.
    (
        STEP,
        "day = 2",
        'day = 2\nid = "rapid-relief"',
        5,
        "step identity 'rapid-relief' is also the identity of 01-rapid-relief.md",
    ),
    (STEP, "day = 2", 'day = 2\nid = "Not A Slug"', 5, "id must use a-z, 0-9 and '-'"),
    (STEP, "day = 2", 'day = 2\nbackfill = "yes"', 5, "backfill must be true or false"),
]


@pytest.mark.parametrize(("name", "old", "new", "line", "words"), CASES)
def test_bad_input_names_file_and_line(project, name, old, new, line, words):
    path = edit(project, name, old, new)
    if line is None:  # the line the edit put the mistake on
        text = path.read_text(encoding="utf-8")
        line = text[: text.index(new.strip().splitlines()[0])].count("\n") + 1
    result = run_check(project)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    errors = [ln for ln in result.output.splitlines() if "error:" in ln or ln.startswith("Error")]
    assert len(errors) == 1, result.output
    assert f"{path}:{line}:" in errors[0], errors[0]
    assert words in errors[0]


def test_non_utf8_file_names_the_line(project):
    path = project / STEP
    data = path.read_bytes().replace(b"traditional", b"trad\xe9tional", 1)
    path.write_bytes(data)
    line = data[: data.index(b"\xe9")].count(b"\n") + 1
    result = run_check(project)
    assert result.exit_code == 1
    assert f"{path}:{line}: error: not UTF-8 text" in result.output
    assert "Traceback" not in result.output


def test_a_broken_campaign_does_not_hide_a_valid_one(project):
    broken = project / "campaigns" / "aaa-broken"
    broken.mkdir()
    (broken / "campaign.toml").write_text("name = [\n")
    result = run_check(project)
    assert result.exit_code == 1
    assert "aaa-broken: not loaded, 1 error(s)" in result.output
    assert "ketamine-therapy: 6 emails, 0 error(s)" in result.output


def test_clean_campaign_passes_with_the_long_subject_warning(project):
    result = run_check(project, "ketamine-therapy")
    assert result.exit_code == 0, result.output
    assert "04-fewer-side-effects.md:2: warning: subject is 86 characters" in result.output


def test_debug_shows_the_traceback(project):
    result = CliRunner().invoke(main, ["--root", str(project), "--debug", "check", "nope"])
    assert result.exit_code == 1
    assert result.exception is not None  # re-raised for the developer, not swallowed


def test_unknown_campaign_is_a_clear_error(project):
    result = run_check(project, "nope")
    assert result.exit_code == 1
    assert result.output.startswith("Error: no campaign 'nope'")


def test_a_step_that_is_not_a_regular_file_is_refused_at_once(project):
    folder = project / "campaigns" / "ketamine-therapy"
    (folder / "07-endless.md").symlink_to("/dev/zero")
    result = run_check(project)
    assert result.exit_code == 1
    assert f"{folder / '07-endless.md'}: error: not a regular file" in result.output
    assert "Traceback" not in result.output


def test_a_step_over_one_megabyte_is_refused_before_it_is_read(project):
    folder = project / "campaigns" / "ketamine-therapy"
    body = "+++\nsubject = 'Huge'\nday = 20\n+++\n\n" + "All work and no play. " * 100_000
    (folder / "07-huge.md").write_text(body)
    result = run_check(project)
    assert result.exit_code == 1
    expected = "error: the file is 2.1 MB; campaign files are limited to 1 MB"
    assert f"{folder / '07-huge.md'}: {expected}" in result.output


NOT_FILES = [
    "campaigns/ketamine-therapy/campaign.toml",
    "campaigns/ketamine-therapy/preview.toml",
    "templates/base.html",
    "templates/base.txt",
]


@pytest.mark.parametrize("kind", ["folder", "fifo"])
@pytest.mark.parametrize("name", NOT_FILES)
def test_a_folder_or_pipe_in_place_of_a_campaign_file_is_named_at_once(project, name, kind):
    """A real process with a deadline: reading a FIFO would hang it for ever."""
    import os
    import subprocess
    import sys

    path = project / name
    path.unlink()
    if kind == "folder":
        path.mkdir()
    else:
        os.mkfifo(path)
    dripline = str(Path(sys.executable).with_name("dripline"))
    done = subprocess.run(
        [dripline, "--root", str(project), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert f"{path}: error: not a regular file (a device, folder or pipe?)" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_folder_or_pipe_named_dripline_toml_is_one_error(project, kind):
    import os
    import subprocess
    import sys

    path = project / "dripline.toml"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    dripline = str(Path(sys.executable).with_name("dripline"))
    done = subprocess.run(
        [dripline, "--root", str(project), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Error: {path}: not a regular file (a device, folder or pipe?)"
    ]
