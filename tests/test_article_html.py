"""Saved web pages (dripline/article/_html.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dripline.article import ArticleError, load_article, parse_article

ARTICLES = Path(__file__).resolve().parent / "fixtures" / "articles"
PAGE = ARTICLES / "houseplants.html"


def _line_of(path: Path, fragment: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if fragment in line)


def _everything(article) -> str:
    parts = [article.title, *article.intro]
    for section in article.sections:
        parts.extend([section.heading, *section.blocks])
    return "\n".join(parts)


def test_page_title_from_h1_sections_from_h2_with_numbering_stripped():
    article = load_article(PAGE)
    assert article.format == "html"
    assert article.title == "7 Reasons to Keep Houseplants"
    assert [s.heading for s in article.sections] == [
        "They Lift Your Mood",
        "They Make a Room Feel Calmer",
        "They Add Humidity",
        "Caring for Them Is a Small Daily Ritual",
        "They Can Help You Focus",
        "They Teach Patience",
        "They Are Affordable",
    ]
    assert article.sections[0].line == _line_of(PAGE, "<h2>1. They Lift Your Mood")
    assert article.sections[6].line == _line_of(PAGE, "<h2>7. They Are Affordable")


def test_page_introduction_and_section_bodies_as_markdown():
    article = load_article(PAGE)
    assert article.intro == (
        "Houseplants are more than decoration. Caring for a few pots of green changes how a "
        "room *feels* and, it turns out, how we feel in it.",
        "Here are seven reasons to bring some home this weekend.",
    )
    assert article.sections[0].blocks == (
        "Studies of office workers found that people with plants at their desks reported "
        "**less stress** and more satisfaction with their work.",
    )
    assert article.sections[3].blocks == (
        "Watering and turning your plants takes five minutes and gives the day a calm pause. "
        "Good first plants:",
        "- [Pothos](https://example.com/pothos), which forgives missed waterings\n"
        "- Snake plant, happy in low light\n"
        "- Spider plant, which produces babies you can give away",
    )
    assert article.sections[6].blocks == (
        "A healthy cutting costs little or nothing: ask a friend, or look for a plant swap "
        "near you.",
        "*Tip:* keep the nursery pot and place it inside a nicer one, so water can drain.",
    )


def test_page_furniture_is_dropped():
    article = load_article(PAGE)
    # Each ad, related box and form sits between two sections: neither neighbour gets it.
    assert article.sections[1].blocks == (
        "Green is restful to the eye. A single large plant softens the hard lines of a room.",
    )
    assert article.sections[2].blocks == (
        "Plants release water vapour through their leaves, which helps in rooms dried out by "
        "winter heating.",
    )
    assert len(article.sections[4].blocks) == 1
    text = _everything(article)
    for furniture in (
        "Green Living Daily", "Home", "Search", "Lena Brooks", "April 2", "Share", "Tweet",
        "Advertisement", "loadAd", "Related", "Ferns", "newsletter", "Subscribe", "Tags",
        "Popular Posts", "Tomatoes", "Privacy", "gtag", "font-family",
    ):  # fmt: skip
        assert furniture not in text, furniture


def test_title_element_and_dominant_heading_level_when_there_is_no_h1_or_h2():
    html = (
        "<html><head><title>Three Small Habits | Daily Wellness</title></head>"
        "<body><div class='content'>"
        "<p>Start here.</p><h3>Drink Water</h3><p>Before <a href='https://example.com/cafe'>"
        "coffee</a>.</p><h4>Note</h4><p>Cold is fine.</p><h3>Stretch</h3><ol><li>Arms</li>"
        "<li>Back<ul><li>slowly</li></ul></li></ol><h3>Walk</h3><p>Ten_minutes * 2.</p>"
        "</div></body></html>"
    )
    article = parse_article(html, Path("habits.html"), "html")
    assert article.title == "Three Small Habits"
    assert article.intro == ("Start here.",)
    assert [s.heading for s in article.sections] == ["Drink Water", "Stretch", "Walk"]
    assert article.sections[0].blocks == (
        "Before [coffee](https://example.com/cafe).",
        "#### Note",
        "Cold is fine.",
    )
    assert article.sections[1].blocks == ("1. Arms\n2. Back\n   - slowly",)
    # Characters Markdown would read as markup are escaped, so the reader sees them as typed.
    assert article.sections[2].blocks == ("Ten\\_minutes \\* 2.",)


def test_page_without_headings_is_one_clear_error(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("<html><body><h1>Title</h1><p>Only text.</p></body></html>", "utf-8")
    with pytest.raises(ArticleError, match="no sections") as caught:
        load_article(path)
    assert caught.value.path == path


def test_page_in_a_declared_legacy_charset_is_read(tmp_path):
    path = tmp_path / "page.html"
    html = (
        "<html><head><meta charset='windows-1252'></head><body><h1>Caf\u00e9 Tips</h1>"
        "<h2>Order Early</h2><p>Na\u00efve customers wait.</p></body></html>"
    )
    path.write_bytes(html.encode("cp1252"))
    article = load_article(path)
    assert article.title == "Café Tips"
    assert article.sections[0].blocks == ("Naïve customers wait.",)
