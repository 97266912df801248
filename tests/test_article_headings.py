"""Heading shapes and title counts (dripline/article/_headings.py, _model.py)."""

from __future__ import annotations

import pytest

from dripline.article import announced_count
from dripline.article._headings import (
    HeadingShape,
    is_title_case,
    split_glued_heading,
    strip_numbering,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("1. It Strengthens Your Heart", (1, "It Strengthens Your Heart")),
        ("3) Write Things Down", (3, "Write Things Down")),
        ("Reason 3: Protect Focus Time", (3, "Protect Focus Time")),
        ("Tip #2 - Drink Water", (2, "Drink Water")),
        ("#5: Sleep Well", (5, "Sleep Well")),
        ("2024 Was a Good Year", (None, "2024 Was a Good Year")),
        ("3.5 Million People Agree", (None, "3.5 Million People Agree")),
    ],
)
def test_strip_numbering(line, expected):
    assert strip_numbering(line) == expected


@pytest.mark.parametrize(
    ("title", "count"),
    [
        ("Top 6 Reasons to Consider Ketamine Therapy for Depression", 6),
        ("7 Ways a Daily Walk Improves Your Health", 7),
        ("Five Signs You Need a Break", 5),
        ("The 3 Best Ways to Save", 3),
        ("Why Rest Matters: Top Ten", 10),
        ("How to Spend Less on Groceries", None),
        ("Our 2024 Guide to Tea", None),
    ],
)
def test_announced_count(title, count):
    assert announced_count(title) == count


def test_title_case_tells_headings_from_sentences():
    assert is_title_case("Enhances Effectiveness of Other Therapies")
    assert is_title_case("Lowers the Risk of Side Effects Compared to Traditional Antidepressants")
    assert not is_title_case("Enhances effectiveness of other therapies")


def test_glue_point_found_only_where_a_heading_shape_ends():
    shape = HeadingShape(["Rapid Relief From Symptoms", "Supports Holistic Mental Health"])
    line = (
        "Enhances Effectiveness of Other TherapiesKetamine therapy not only stands out as a "
        "potent treatment."
    )
    assert split_glued_heading(line, shape) == (
        "Enhances Effectiveness of Other Therapies",
        "Ketamine therapy not only stands out as a potent treatment.",
    )
    # Prose with a capital inside a word is not a glued heading.
    assert (
        split_glued_heading("The iPhone app from McDonald’s sends offers every week.", shape)
        is None
    )
    assert (
        split_glued_heading("YouTube is full of guides to batch cooking if you need ideas.", shape)
        is None
    )
    # In an article whose headings are in sentence case, the glued heading is too.
    sentence_shape = HeadingShape(["Rapid relief from symptoms", "Supports holistic health"])
    assert split_glued_heading(
        "Rapid relief from symptomsKetamine works in hours, not weeks.", sentence_shape
    ) == (
        "Rapid relief from symptoms",
        "Ketamine works in hours, not weeks.",
    )
