"""Plain-text articles as copied from web pages (dripline/article/_text.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dripline.article import ArticleError, load_article, parse_article

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED = FIXTURES / "ketamine-therapy-article.txt"
ARTICLES = FIXTURES / "articles"

SEED_HEADINGS = [
    "Rapid Relief From Symptoms",
    "High Efficacy in Treatment-Resistant Cases",
    "Promotes Neuroplasticity for Long-Term Benefits",
    "Lowers the Risk of Side Effects Compared to Traditional Antidepressants",
    "Supports Holistic Mental Health Improvement",
    "Enhances Effectiveness of Other Therapies",
]
BOILERPLATE = ("Advertisement", "Related Articles", "Latest Articles", "Share this", "Subscribe")


def _all_text(article) -> str:
    parts = [article.title, *article.intro]
    for section in article.sections:
        parts.extend([section.heading, *section.blocks])
    return "\n".join(parts)


def test_seed_has_exactly_the_six_headings_in_order():
    article = load_article(SEED)
    assert article.format == "text"
    assert article.title == "Top 6 Reasons to Consider Ketamine Therapy for Depression"
    assert article.announced_count == 6
    assert [s.heading for s in article.sections] == SEED_HEADINGS


def test_seed_sixth_heading_is_separated_from_its_glued_first_sentence():
    sixth = load_article(SEED).sections[5]
    assert sixth.heading == "Enhances Effectiveness of Other Therapies"
    assert len(sixth.blocks) == 1
    assert sixth.blocks[0].startswith(
        "Ketamine therapy not only stands out as a potent treatment for depression"
    )
    assert sixth.blocks[0].endswith("multi-faceted approach to treating depression.")
    assert sixth.line == 31


def test_seed_section_boundaries_and_introduction():
    article = load_article(SEED)
    assert len(article.intro) == 1
    assert article.intro[0].startswith("In recent years, ketamine therapy has emerged")
    assert article.intro[0].endswith("transformative step towards healing and well-being.")
    assert [len(s.blocks) for s in article.sections] == [2, 1, 2, 2, 1, 1]
    assert article.sections[0].blocks[1].startswith("Ketamine’s action on the brain")
    assert article.sections[3].blocks[1].startswith("In contrast, ketamine, when administered")


def test_seed_keeps_no_boilerplate():
    text = _all_text(load_article(SEED))
    for furniture in BOILERPLATE:
        assert furniture.lower() not in text.lower()
    assert "- Advertisement -" not in text


def test_question_headings_with_navigation_byline_share_and_related_links_dropped():
    article = load_article(ARTICLES / "sleep-questions.txt")
    assert article.title == "5 Questions Everyone Asks About Better Sleep"
    assert [s.heading for s in article.sections] == [
        "How Much Sleep Do Adults Really Need?",
        "Why Do I Wake Up at 3 A.M.?",
        "Does Screen Time Before Bed Hurt Sleep?",
        "Is Napping Good or Bad?",
        "What Should I Do When I Can't Fall Asleep?",
    ]
    # The hard-wrapped first paragraph is joined; navigation, byline and share lines are gone.
    assert article.intro == (
        "Most of us know we should sleep more, yet few of us know why it matters or where to "
        "start. Sleep researchers hear the same questions again and again, so we collected the "
        "five that come up most often.",
        "The answers below are short on purpose. Pick one change, try it for a week, and see "
        "how you feel.",
    )
    assert article.sections[1].blocks == (
        "Waking briefly during the night is normal. Stress, alcohol and a warm bedroom make "
        "those awakenings longer and easier to notice.",
    )
    assert article.sections[3].blocks == (
        "A short nap of twenty minutes can restore alertness without making night-time sleep "
        "harder. Long or late naps are the ones that cause trouble.",
    )
    assert article.sections[4].blocks[-1] == (
        "Keep a notebook by the bed for the thoughts that keep you awake."
    )
    text = _all_text(article)
    for furniture in (
        "Skip to content", "Home ›", "Menu", "Search", "By Dana", "min read", "Share",
        "Subscribe", "Related", "Pillows", "Bedroom Should Be Cooler", "Advertisement",
    ):  # fmt: skip
        assert furniture not in text


def test_numbered_headings_keep_lists_inside_sections():
    article = load_article(ARTICLES / "walking-numbered.txt")
    assert article.announced_count == 7
    assert [s.heading for s in article.sections] == [
        "It Strengthens Your Heart",
        "It Lifts Your Mood",
        "It Helps You Sleep",
        "It Protects Your Joints",
        "It Keeps Weight in Check",
        "It Sharpens Your Mind",
        "It Is Easy to Share",
    ]
    assert article.sections[3].blocks == (
        "Walking moves fluid through the cartilage of the knees and hips. To get the most from it:",
        "- wear shoes with good cushioning\n- start on flat ground\n- build up the distance slowly",
    )
    # "1) pick a fixed time" inside reason 7 is a list item, not an eighth heading.
    assert article.sections[6].blocks == (
        "Walking with a friend turns exercise into social time. Try these three steps:",
        "1) pick a fixed time\n2) choose a route you both like\n"
        "3) agree to go whatever the weather",
        "You will be surprised how quickly the habit sticks.",
    )
    assert article.intro == (
        "A brisk daily walk is the easiest exercise habit to start and keep. It needs no gym "
        "and no equipment, and the benefits begin within weeks.",
    )


def test_labelled_headings_with_an_advertisement_marker_between_sections():
    article = load_article(ARTICLES / "tea-reason-labels.txt")
    assert [s.heading for s in article.sections] == [
        "It Is Rich in Antioxidants",
        "It Gives Gentle Energy",
        "It Supports a Healthy Heart",
        "It Is Easy to Make Well",
    ]
    # The marker lines between reasons 2 and 3 belong to neither section.
    assert article.sections[1].blocks == (
        "Green tea has about a third of the caffeine of coffee. Together with the amino acid "
        "L-theanine it gives calm, steady alertness instead of a jolt.",
    )
    assert article.sections[2].blocks[0].startswith("Studies link regular green tea")
    assert article.sections[2].line == 16
    assert "advertisement" not in _all_text(article).lower()


def test_glued_heading_split_without_a_count_in_the_title_but_brand_names_left_alone():
    article = load_article(ARTICLES / "grocery-glued.txt")
    assert article.announced_count is None
    assert [s.heading for s in article.sections] == [
        "Plan Your Meals for the Week",
        "Shop With a List",
        "Buy Store Brands",
        "Cook Once, Eat Twice",
    ]
    assert article.sections[1].blocks == (
        "A list keeps you on track in the store and out of the aisles you do not need.",
        "McDonald’s, vending machines and the snack aisle get a lot less of your money when "
        "you stick to it.",
    )
    assert article.sections[3].blocks[1] == (
        "YouTube is full of guides to batch cooking if you need ideas."
    )


def test_count_mismatch_is_reported_by_the_title_count_not_hidden():
    article = load_article(ARTICLES / "spanish-count-mismatch.txt")
    assert article.announced_count == 5
    assert len(article.sections) == 4


@pytest.mark.parametrize(
    ("title", "headings"),
    [
        ("Top 2 Reasons to Rest", ["Sleep Restores You", "Rest Clears Your Head"]),
        (
            "Why Rest Matters",
            ["Sleep Restores You", "Rest Clears Your Head", "Great Ideas Come Later"],
        ),
    ],
)
def test_glued_heading_split_only_while_the_title_count_lacks_a_section(title, headings):
    text = (
        f"{title}\n\nIntro paragraph that sets the scene for the reader.\n\n"
        "Sleep Restores You\n\nYour body repairs itself during deep sleep every night.\n\n"
        "Rest Clears Your Head\n\nA pause lets ideas settle.\n\nGreat Ideas Come LaterWhen "
        "you return to a problem after a break it often looks simpler than before.\n"
    )
    article = parse_article(text, Path("rest.txt"), "text")
    assert [s.heading for s in article.sections] == headings
    assert article.sections[-1].blocks[-1].endswith("it often looks simpler than before.")


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("", "empty", None),
        ("- Advertisement -\n\nRelated Articles\n", "empty", None),
        (
            "This first line is a long paragraph rather than a title, as it ends with a period.\n",
            "first line should be the article's title",
            1,
        ),
        ("A Title\n\nOnly an introduction, and no headings at all.\n", "no sections", None),
    ],
)
def test_unusable_text_is_one_clear_error_naming_the_file(text, message, line, tmp_path):
    path = tmp_path / "article.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ArticleError) as caught:
        load_article(path)
    assert message in str(caught.value)
    assert caught.value.path == path
    assert caught.value.line == line


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "article.txt"
    path.write_bytes(b"A Title\n\nCaf\xe9 culture explained in one line.\n")
    with pytest.raises(ArticleError) as caught:
        load_article(path)
    assert str(caught.value) == (f"{path}:3: not UTF-8 text (byte 0xe9); save the article as UTF-8")


def test_format_is_detected_from_content_when_the_name_says_nothing(tmp_path):
    for name, body, expected in [
        ("page", "<!DOCTYPE html><html><body><h1>T</h1><h2>A</h2><p>x</p></body></html>", "html"),
        ("draft", "# Title\n\n## One\n\nText.\n", "markdown"),
        ("copied", "Title\n\nOne\n\nText of the first reason.\n", "text"),
    ]:
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        assert load_article(path).format == expected, name


def test_control_and_zero_width_characters_do_not_reach_headings():
    text = "A Title\n\nIntro.\n\nFirst\x00 Re\u200bason\x07\n\nBody text\x1b here.\n"
    article = parse_article(text, Path("copied.txt"), "text")
    assert article.sections[0].heading == "First Reason"
    assert article.sections[0].blocks == ("Body text here.",)


def test_numbered_glued_heading_is_split_but_numbered_sentences_stay_a_list():
    text = (
        "3 Habits for Calm Mornings\n\n"
        "Start with these steps:\n"
        "1. Wake up at the same time every day, even on weekends.\n"
        "2. Drink a glass of water before you look at your phone.\n\n"
        "1. Make Your Bed\n\nIt takes a minute and the room looks calmer at once.\n\n"
        "2. Step Outside\n\nDaylight in the first hour sets your body clock.\n\n"
        "3. Write One LineWrite a single sentence about what you want from the day ahead.\n"
    )
    article = parse_article(text, Path("calm.txt"), "text")
    assert article.intro == (
        "Start with these steps:",
        "1. Wake up at the same time every day, even on weekends.\n"
        "2. Drink a glass of water before you look at your phone.",
    )
    assert [s.heading for s in article.sections] == [
        "Make Your Bed",
        "Step Outside",
        "Write One Line",
    ]
    assert article.sections[2].blocks == (
        "Write a single sentence about what you want from the day ahead.",
    )


@pytest.mark.parametrize(
    "variant",
    [
        lambda text: "\n".join(line for line in text.splitlines() if line.strip()),
        lambda text: text.replace("\n", "\r\n"),
        lambda text: "\ufeff" + text.replace(" ", "\u00a0", 3),
    ],
    ids=["no-blank-lines", "crlf", "bom-and-nbsp"],
)
def test_seed_copied_differently_gives_the_same_article(variant):
    expected = load_article(SEED)
    text = variant(SEED.read_text(encoding="utf-8"))
    article = parse_article(text.removeprefix("\ufeff"), SEED, "text")
    assert article.title == expected.title
    assert article.intro == expected.intro
    assert [(s.heading, s.blocks) for s in article.sections] == [
        (s.heading, s.blocks) for s in expected.sections
    ]
