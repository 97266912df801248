"""Subjects, preheaders and slugs (dripline/article/_wording.py)."""

from __future__ import annotations

import pytest

from dripline.article._wording import (
    PREHEADER_MAX,
    first_sentence,
    plain_text,
    preheader,
    sentence_case,
    slugify,
)


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Rapid Relief From Symptoms", "Rapid relief from symptoms"),
        ("Promotes Neuroplasticity for Long-Term Benefits",
         "Promotes neuroplasticity for long-term benefits"),
        ("Pairs Well With CBT and SSRIs", "Pairs well with CBT and SSRIs"),
        ("Why Do I Wake Up at 3 A.M.?", "Why do I wake up at 3 A.M.?"),
        ("Works on Your iPhone", "Works on your iPhone"),
        ("already sentence case", "Already sentence case"),
    ],
)  # fmt: skip
def test_sentence_case_keeps_acronyms(heading, expected):
    assert sentence_case(heading) == expected


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Ask Dr. Lee About Sleep", "Ask Dr. Lee about sleep"),
        ("Why Mr. Smith, Jr. Sleeps Well", "Why Mr. Smith, Jr. sleeps well"),
        ("Tips From Mr. Smith, Jr. And Ms. Jones", "Tips from Mr. Smith, Jr. and Ms. Jones"),
        ("What Dr. Martin Luther King Jr. Said", "What Dr. Martin Luther King Jr. said"),
        ("Dr. Jane Lee On Better Evenings", "Dr. Jane Lee on better evenings"),
        ("Dr. Lee: Dim The Lights", "Dr. Lee: dim the lights"),
        ("A Note From Prof. Garcia, PhD", "A note from Prof. Garcia, PhD"),
        ("The Dr. Is In", "The dr. is in"),  # a title with no name after it
    ],
)
def test_sentence_case_keeps_a_persons_name_after_a_title(heading, expected):
    assert sentence_case(heading) == expected


def test_preheader_whole_sentence_when_short():
    assert preheader("Short first sentence. Second one is ignored.") == "Short first sentence."


def test_preheader_cut_at_a_word_boundary_under_90_characters():
    text = (
        "Ketamine therapy extends beyond immediate symptom relief; it promotes neuroplasticity, "
        "leading to long-term benefits in brain function and mental health. More."
    )
    cut = preheader(text)
    assert cut == (
        "Ketamine therapy extends beyond immediate symptom relief; it promotes neuroplasticity,…"
    )
    assert len(cut) <= PREHEADER_MAX < 90
    assert text.startswith(cut.removesuffix("…"))


def test_preheader_of_one_enormous_word_is_still_bounded():
    cut = preheader("https://example.com/" + "a" * 200 + " is where it starts.")
    assert len(cut) == PREHEADER_MAX and cut.endswith("…")


def test_first_sentence_reads_through_markdown():
    block = "See **[our survey](https://example.com/s)** of 3.5 million readers. Then more."
    assert first_sentence(block) == "See our survey of 3.5 million readers."
    assert plain_text("- one\n- *two*") == "one two"


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Rapid Relief From Symptoms", "rapid-relief-symptoms"),
        ("Lowers the Risk of Side Effects Compared to Traditional Antidepressants",
         "lowers-risk-side-effects"),
        ("Why Do I Wake Up at 3 A.M.?", "why-do-i-wake"),
        ("Café Crème: Déjà Vu", "cafe-creme-deja-vu"),
        ("?!", ""),
    ],
)  # fmt: skip
def test_slugify_gives_file_name_safe_slugs(heading, slug):
    assert slugify(heading) == slug
