"""Markdown drafts (dripline/article/_markdown.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dripline.article import ArticleError, load_article, parse_article

ARTICLES = Path(__file__).resolve().parent / "fixtures" / "articles"
DRAFT = ARTICLES / "remote-work-draft.md"


def _line_of(path: Path, start: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if line.startswith(start))


def test_draft_title_intro_and_numbering_stripped_from_headings():
    article = load_article(DRAFT)
    assert article.format == "markdown"
    assert article.title == "4 Ways to Make Remote Work Actually Work"
    assert [s.heading for s in article.sections] == [
        "Set Up a Real Workspace",
        "Write Things Down",
        "Protect Focus Time",
        "Close the Laptop",
    ]
    assert [s.line for s in article.sections] == [
        _line_of(DRAFT, "## 1."),
        _line_of(DRAFT, "## 2)"),
        _line_of(DRAFT, "## Reason 3"),
        _line_of(DRAFT, "## 4."),
    ]
    # Front matter is not part of the introduction; links and emphasis are kept as written.
    assert article.intro == (
        "Working from home was supposed to be *easy*. For many teams it turned into\n"
        "endless calls and blurred evenings. These four habits, drawn from\n"
        "[our 2024 survey](https://example.com/survey), help.",
    )


def test_lists_subheadings_and_emphasis_stay_in_their_section():
    sections = load_article(DRAFT).sections
    assert sections[0].blocks == (
        "A desk that is only for work tells your brain when the day starts and ends.",
        "- a chair you can sit in for hours\n"
        "- light from the side, not behind the screen\n"
        "- a door you can close, if you have one",
    )
    assert sections[1].blocks == (
        "Remote teams run on **written** decisions. A short note after each meeting saves\n"
        "three follow-up calls.",
        "### A template that works",
        "Decision, owner, deadline: nothing more.",
    )


def test_rule_between_sections_dropped_and_trailing_footer_cut():
    sections = load_article(DRAFT).sections
    # The '---' before reason 4 is only a separator; reason 3 ends at its own paragraph.
    assert sections[2].blocks == (
        "Block two hours a day with no meetings. Tell your team *why*, so the block is respected.",
    )
    assert sections[3].blocks == (
        "End the day on purpose: write tomorrow's first task, then shut the laptop. The\n"
        "work will still be there in the morning.",
    )
    everything = "\n".join(b for s in sections for b in s.blocks)
    assert "Subscribe" not in everything
    assert "Share this" not in everything
    assert "Edit on GitHub" not in everything


def test_related_section_and_ad_paragraphs_are_dropped():
    text = (
        "# Three Tips\n\nIntro.\n\n## First Tip\n\nOne.\n\n*Advertisement*\n\n"
        "## Second Tip\n\nTwo.\n\n## Related Articles\n\n- [Other](https://example.com)\n\n"
        "## Third Tip\n\nThree.\n"
    )
    article = parse_article(text, Path("tips.md"), "markdown")
    assert [s.heading for s in article.sections] == ["First Tip", "Second Tip", "Third Tip"]
    assert [s.blocks for s in article.sections] == [("One.",), ("Two.",), ("Three.",)]


def test_title_from_front_matter_and_h3_sections_when_there_is_no_h2():
    text = (
        '+++\ntitle = "Two Quick Wins"\n+++\n\n'
        "Lead paragraph.\n\n### Win One\n\nA.\n\n### Win Two\n\nB.\n"
    )
    article = parse_article(text, Path("wins.md"), "markdown")
    assert article.title == "Two Quick Wins"
    assert article.intro == ("Lead paragraph.",)
    assert [(s.heading, s.line) for s in article.sections] == [("Win One", 7), ("Win Two", 11)]


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("Just a paragraph.\n\n## A\n\nB.\n", "no title", 1),
        ("# Title\n\nNo sections here.\n", "no sections", 1),
        ("# Title\n\n## Empty\n\n## Full\n\nText.\n", "'Empty' has no text", 3),
    ],
)
def test_unusable_drafts_are_one_clear_error(text, message, line, tmp_path):
    path = tmp_path / "draft.md"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ArticleError) as caught:
        load_article(path)
    assert message in str(caught.value)
    assert (caught.value.path, caught.value.line) == (path, line)
