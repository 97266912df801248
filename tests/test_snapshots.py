"""`dripline snapshot` writes reviewable plain-text renderings; `check` fails while one is stale."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from dripline.cli import main

SLUG = "ketamine-therapy"


def run(project: Path, *args: str):
    return CliRunner().invoke(main, ["--root", str(project), *args])


def test_snapshot_then_check_names_the_stale_one(project: Path):
    folder = project / "campaigns" / SLUG
    assert run(project, "check", SLUG).exit_code == 0  # no .snapshots folder: not required
    result = run(project, "snapshot", SLUG)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (folder / ".snapshots").iterdir())
    assert names[:2] == ["01-rapid-relief.txt", "02-treatment-resistant.txt"]
    assert len(names) == 6
    text = (folder / ".snapshots" / "02-treatment-resistant.txt").read_text()
    assert "Subject: Reason 2 of 6: High efficacy in treatment-resistant cases" in text
    assert "Hi Maria," in text  # rendered for the first sample subscriber (preview.toml)
    assert run(project, "check", SLUG).exit_code == 0
    # Snapshots are stable: writing them again changes nothing.
    before = {p.name: p.read_text() for p in (folder / ".snapshots").iterdir()}
    run(project, "snapshot", SLUG)
    assert before == {p.name: p.read_text() for p in (folder / ".snapshots").iterdir()}

    step = folder / "02-treatment-resistant.md"
    step.write_text(step.read_text().replace("High Efficacy", "Great Efficacy", 1))
    result = run(project, "check", SLUG)
    assert result.exit_code == 1
    stale = folder / ".snapshots" / "02-treatment-resistant.txt"
    assert f"{stale}: error: snapshot stale: run `dripline snapshot {SLUG}`" in result.output
    assert result.output.count("snapshot stale") == 1

    # Renaming a step leaves its old snapshot over and a new one missing: both named.
    step.rename(folder / "02-resistant-cases.md")
    result = run(project, "check", SLUG)
    assert "02-resistant-cases.txt: error: snapshot missing" in result.output
    assert "02-treatment-resistant.txt: error: snapshot no step has this snapshot" in result.output
    assert run(project, "snapshot", SLUG).exit_code == 0
    assert run(project, "check", SLUG).exit_code == 0
    assert not (folder / ".snapshots" / "02-treatment-resistant.txt").exists()


def test_snapshot_of_a_step_that_runs_away_ends_within_the_render_budget(
    project: Path, monkeypatch
):
    """Jinja works out constant expressions as it compiles: a runaway one is an error at
    its line after the render budget, not a command that never ends."""
    monkeypatch.setenv("DRIPLINE_RENDER_BUDGET", "1")
    step = project / "campaigns" / SLUG / "03-neuroplasticity.md"
    runaway = '{{ "x" | slice(1000000000000) | sum(start=[]) }}'
    step.write_text(step.read_text() + f"\n{runaway}\n")
    result = run(project, "snapshot", SLUG)
    assert result.exit_code == 1
    line = step.read_text().splitlines().index(runaway) + 1
    assert f"Error: {step}:{line}: compiling {step.name} took longer than 1 s" in result.output
    assert not (project / "campaigns" / SLUG / ".snapshots").exists()
