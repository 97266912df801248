"""``dripline import-article`` (dripline/cli/import_article.py), through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from dripline.article import load_article
from dripline.campaign import load_campaign
from dripline.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SEED = FIXTURES / "ketamine-therapy-article.txt"
MISMATCH = FIXTURES / "articles" / "spanish-count-mismatch.txt"


def _run(project: Path, *args: str):
    return CliRunner().invoke(main, ["--root", str(project), "import-article", *args])


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir())}


def _blocks(body: str) -> list[str]:
    return [block.strip() for block in body.split("\n\n") if block.strip()]


def test_import_writes_a_campaign_that_loads(tmp_path):
    result = _run(tmp_path, str(SEED), "--slug", "ketamine", "--every", "3")
    assert result.exit_code == 0, result.output
    assert f"Wrote {tmp_path / 'campaigns' / 'ketamine'}/ with 6 emails" in result.stdout
    campaign = load_campaign(tmp_path / "campaigns" / "ketamine")
    assert [s.day for s in campaign.steps] == [0, 3, 6, 9, 12, 15]
    assert [s.name for s in campaign.steps] == [
        "01-rapid-relief-symptoms",
        "02-high-efficacy-treatment-resistant",
        "03-promotes-neuroplasticity-long-term",
        "04-lowers-risk-side-effects",
        "05-supports-holistic-mental-health",
        "06-enhances-effectiveness-other-therapies",
    ]
    assert campaign.steps[5].subject == "Reason 6 of 6: Enhances effectiveness of other therapies"


def test_second_import_refuses_to_overwrite_without_force(tmp_path):
    assert _run(tmp_path, str(SEED), "--slug", "k").exit_code == 0
    folder = tmp_path / "campaigns" / "k"
    (folder / "campaign.toml").write_text(
        (folder / "campaign.toml")
        .read_text(encoding="utf-8")
        .replace("edit-me@example.com", "news@clinic.example.com"),
        encoding="utf-8",
    )
    before = _snapshot(folder)
    result = _run(tmp_path, str(FIXTURES / "articles" / "tea-reason-labels.txt"), "--slug", "k")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {folder}: a campaign with this slug already exists; use --force to replace it\n"
    )
    assert _snapshot(folder) == before
    forced = _run(tmp_path, str(SEED), "--slug", "k", "--force")
    assert forced.exit_code == 0, forced.output
    assert load_campaign(folder).from_address == "edit-me@example.com"


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    result = _run(tmp_path, str(SEED), "--slug", "k", "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Title: Top 6 Reasons to Consider Ketamine Therapy for Depression" in out
    assert "Introduction: 1 paragraph(s)" in out
    assert "In recent years, ketamine therapy has emerged as a groundbreaking treatment" in out
    for heading in ("Rapid Relief From Symptoms", "Enhances Effectiveness of Other Therapies"):
        assert f"## {heading}" in out
    assert "Ketamine therapy not only stands out as a potent treatment for depression" in out
    assert "06-enhances-effectiveness-other-therapies.md (day 10)" in out
    assert "nothing written" in out
    assert not (tmp_path / "campaigns").exists()


def test_count_mismatch_lists_what_was_found_and_exits_1(tmp_path):
    result = _run(tmp_path, str(MISMATCH), "--slug", "lang")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: {MISMATCH}: the title announces 5 but 4 section(s) were found:\n"
        "  1. It Opens Doors at Work (line 5)\n"
        "  2. It Keeps Your Brain Active (line 9)\n"
        "  3. It Makes Travel Richer (line 13)\n"
        "  4. It Connects You to Other Cultures (line 17)\n"
    )
    assert "--force" in result.stderr
    assert not (tmp_path / "campaigns").exists()


def test_count_mismatch_with_force_imports_what_was_found(tmp_path):
    result = _run(tmp_path, str(MISMATCH), "--slug", "lang", "--force")
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.stderr and "announces 5 but 4" in result.stderr
    campaign = load_campaign(tmp_path / "campaigns" / "lang")
    assert [s.subject for s in campaign.steps] == [
        "Reason 1 of 4: It opens doors at work",
        "Reason 2 of 4: It keeps your brain active",
        "Reason 3 of 4: It makes travel richer",
        "Reason 4 of 4: It connects you to other cultures",
    ]


def test_user_errors_are_one_line_without_traceback(tmp_path):
    missing = _run(tmp_path, str(tmp_path / "nope.txt"), "--slug", "x")
    assert missing.exit_code == 1
    assert missing.stderr == (
        f"Error: {tmp_path / 'nope.txt'}: cannot read the article: No such file or directory\n"
    )
    bad_slug = _run(tmp_path, str(SEED), "--slug", "Not A Slug")
    assert bad_slug.exit_code == 1
    assert "may only use a-z, 0-9 and '-'" in bad_slug.stderr
    assert _run(tmp_path, str(SEED), "--slug", "x", "--every", "0").exit_code == 2  # usage


def test_installed_command_reports_errors_without_traceback(tmp_path):
    article = tmp_path / "broken.txt"
    article.write_bytes(b"A Title\n\nOne\n\nCaf\xe9.\n")
    dripline = Path(sys.executable).parent / "dripline"
    done = subprocess.run(
        [str(dripline), "--root", str(tmp_path), "import-article", str(article), "--slug", "b"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert (
        done.stderr
        == f"Error: {article}:5: not UTF-8 text (byte 0xe9); save the article as UTF-8\n"
    )
    assert "Traceback" not in done.stdout + done.stderr


def test_committed_ketamine_campaign_holds_the_text_import_extracts(tmp_path):
    """campaigns/ketamine-therapy is faithful to the article, reason for reason."""
    article = load_article(SEED)
    committed = load_campaign(ROOT / "campaigns" / "ketamine-therapy")
    assert _run(tmp_path, str(SEED), "--slug", "ketamine-therapy").exit_code == 0
    imported = load_campaign(tmp_path / "campaigns" / "ketamine-therapy")
    assert len(committed.steps) == len(article.sections) == 6
    assert committed.name == article.title
    for step, section, generated in zip(
        committed.steps, article.sections, imported.steps, strict=True
    ):
        blocks = _blocks(step.body)
        heading_at = blocks.index(f"## {section.heading}")
        # After the heading: the section's paragraphs verbatim, then one closing line.
        assert blocks[heading_at + 1 : -1] == list(section.blocks), step.name
        assert (step.subject, step.preheader, step.day, step.send_immediately) == (
            generated.subject,
            generated.preheader,
            generated.day,
            generated.send_immediately,
        )
    first = _blocks(committed.steps[0].body)
    assert first[1 : 1 + len(article.intro)] == list(article.intro)


def test_dry_run_of_a_mismatched_article_shows_the_plan_then_fails(tmp_path):
    result = _run(tmp_path, str(MISMATCH), "--slug", "lang", "--dry-run")
    assert result.exit_code == 1
    assert "## It Connects You to Other Cultures" in result.stdout
    assert "announces 5 but 4" in result.stderr
    forced = _run(tmp_path, str(MISMATCH), "--slug", "lang", "--dry-run", "--force")
    assert forced.exit_code == 0
    assert not (tmp_path / "campaigns").exists()


def test_dry_run_says_when_it_would_replace_a_campaign(tmp_path):
    assert _run(tmp_path, str(SEED), "--slug", "k").exit_code == 0
    before = _snapshot(tmp_path / "campaigns" / "k")
    result = _run(
        tmp_path, str(FIXTURES / "articles" / "houseplants.html"), "--slug", "k", "--dry-run"
    )
    assert result.exit_code == 0
    assert "replacing the existing campaign: needs --force" in result.stdout
    assert _snapshot(tmp_path / "campaigns" / "k") == before


def test_names_after_titles_keep_their_capitals_in_subjects(tmp_path):
    article = FIXTURES / "articles" / "sleep-doctors.txt"
    result = _run(tmp_path, str(article), "--slug", "doctors")
    assert result.exit_code == 0, result.output
    campaign = load_campaign(tmp_path / "campaigns" / "doctors")
    assert [s.subject for s in campaign.steps] == [
        "Reason 1 of 3: Ask Dr. Lee about your caffeine",
        "Reason 2 of 3: Why Mr. Smith, Jr. sleeps through the night",
        "Reason 3 of 3: What Prof. Maria Garcia says about naps",
    ]
    assert campaign.steps[1].preheader.startswith("Mr. Smith, Jr. cut his screen time after 9 p.m.")
