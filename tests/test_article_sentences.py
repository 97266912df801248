"""Sentences and headings on real prose (dripline/article/_sentences.py), and three articles
with abbreviations, times, amounts and quoted headings imported through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dripline.article._headings import looks_like_heading
from dripline.article._sentences import ends_like_sentence, sentences
from dripline.article._wording import first_sentence, preheader, sentence_case
from dripline.campaign import load_campaign
from dripline.cli import main

ARTICLES = Path(__file__).resolve().parent / "fixtures" / "articles"


@pytest.mark.parametrize(
    ("text", "first"),
    [
        (
            "According to Dr. Chen, adults need 7.5 hours. That is a lot.",
            "According to Dr. Chen, adults need 7.5 hours.",
        ),
        ("Mr. J. R. Miller woke at 6 a.m. every day. Then he ran.", None),
        ("Eat greens, e.g. kale, at the U.S. average price. Or not.", None),
        ("Half of a 3 p.m. coffee is still there at 9 p.m. Switch early.", None),
    ],
)
def test_abbreviations_initials_and_decimals_end_no_sentence(text, first):
    found = sentences(text)
    assert len(found) == 2, found
    assert found[0] == (first or text.rsplit(". ", 1)[0] + ".")
    assert first_sentence(text) == found[0]


@pytest.mark.parametrize(
    "heading",
    [
        "Dim the Lights After 9 p.m.",
        "Stop Caffeine by 2 p.m.",
        "Run Your Long Run at 6 a.m.",
        "Ask Dr.",
        "Made in the U.S.",
        "Keep the Bedroom at 18.5 °C",
        "“Wind Down” Before Bed",
    ],
)
def test_a_heading_ending_in_an_abbreviation_is_a_heading(heading):
    assert not ends_like_sentence(heading)
    assert looks_like_heading(heading)


@pytest.mark.parametrize("line", ["Dim the lights.", "Sleep well!", "Or this,", "One: two;"])
def test_a_line_ending_in_a_full_stop_is_not_a_heading(line):
    assert ends_like_sentence(line) and not looks_like_heading(line)


def test_sentence_case_keeps_the_word_after_an_opening_quote_capitalised():
    assert sentence_case("“Wind Down” Before Bed") == "“Wind down” before bed"
    assert sentence_case('"Slow Down" on Easy Days') == '"Slow down" on easy days'
    assert sentence_case("Buy “Ugly” Produce for 30% Less") == "Buy “ugly” produce for 30% less"


def test_preheader_is_the_whole_first_sentence_not_cut_at_dr():
    block = "According to Dr. Maria Chen, most adults need 7.5 hours of sleep. One in three don't."
    assert preheader(block) == "According to Dr. Maria Chen, most adults need 7.5 hours of sleep."


def _import(tmp_path: Path, name: str) -> list:
    result = CliRunner().invoke(
        main, ["--root", str(tmp_path), "import-article", str(ARTICLES / name), "--slug", "a"]
    )
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output
    return list(load_campaign(tmp_path / "campaigns" / "a").steps)


def test_numbered_headings_with_times_and_a_quoted_heading(tmp_path):
    steps = _import(tmp_path, "sleep-evening-routine.txt")
    assert [s.subject for s in steps] == [
        "Reason 1 of 5: Stop caffeine by 2 p.m.",
        "Reason 2 of 5: “Wind down” before bed",
        "Reason 3 of 5: Dim the lights after 9 p.m.",
        "Reason 4 of 5: Keep the bedroom at 18.5 °C",
        "Reason 5 of 5: Get up at the same time every day",
    ]
    assert steps[0].preheader == (
        "Caffeine stays in the blood for hours: half of a 3 p.m. coffee is still there at 9 p.m."
    )
    # Each reason in its own email: nothing of reason 4 pasted into email 3.
    assert "## Dim the Lights After 9 p.m." in steps[2].body
    assert "A cool room helps" not in steps[2].body
    assert "Mr. Alvarez, one of Dr. Chen's patients" in steps[2].body
    assert "According to Dr. Maria Chen, a sleep researcher at the U.S. National" in steps[0].body
    assert "**Next in this series:** “Wind down” before bed." in steps[0].body


def test_markdown_headings_with_amounts_times_and_quotes(tmp_path):
    steps = _import(tmp_path, "budget-groceries.md")
    assert [s.subject for s in steps] == [
        "Reason 1 of 4: Plan meals around the $1.99 specials",
        "Reason 2 of 4: Shop before 10 a.m. on Wednesdays",
        "Reason 3 of 4: Buy “ugly” produce for 30% less",
        "Reason 4 of 4: Cook once, eat twice",
    ]
    assert steps[3].preheader.startswith("Dr. Patel, a nutritionist, calls batch cooking")


def test_html_headings_with_times_quotes_and_amounts(tmp_path):
    steps = _import(tmp_path, "marathon-training.html")
    assert [s.subject for s in steps] == [
        "Reason 1 of 3: Run your long run at 6 a.m.",
        "Reason 2 of 3: “Slow down” on easy days",
        "Reason 3 of 3: Spend $150 on shoes, not gadgets",
    ]
    # The whole first sentence (cut to 87 characters at a word), not "Shoes fitted at Mr."
    assert steps[2].preheader == (
        "Shoes fitted at Mr. Okafor's local store cost about $150 and matter more than any…"
    )
    assert steps[0].preheader == "Most marathons start early in the morning."
