"""Every message is standards-clean on both render paths (issue 12).

Each message is parsed back and held to: quoted-printable lines of at most 76
characters and no line over 998; encoded words of at most 75 characters, never two
adjacent without white space; headers that decode to the intended text; no
attribute value holding ``!important``; the preheader followed by its padding;
plain-text table rows and hard breaks kept. The full path (``render``) and the
fast path (``render_bytes``, what ``run`` uses) must give the same message.

Headers are decoded as mail clients do (see ``mail_checks``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mail_checks import (
    ENCODED_WORD,
    assert_wire_clean,
    display_name_of,
    parse,
    raw_headers,
    rfc2047,
)

from dripline._context import clean_text
from dripline._flowed import WIDTH, unflow
from dripline._preheader import PADDING_UNIT, PREHEADER_PADDING
from dripline.campaign import load_campaign
from dripline.errors import RenderError
from dripline.render import CampaignRenderer, Recipient

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 5, 17, 0, tzinfo=UTC)
TOML = (REPO / "campaigns" / "ketamine-therapy" / "campaign.toml").read_text()

TABLE = """| Program | Length | Price |
|---|---|---|
| Group therapy evenings | 6 weeks | 40 dollars |
| One-to-one | 8 weeks | 90 dollars |
"""
ADDRESS = "Visit us at:  \nClearwater Mind Clinic<br>123 Example Street  \nSan Diego\n"
ROWS = [
    "Program | Length | Price",
    "Group therapy evenings | 6 weeks | 40 dollars",
    "One-to-one | 8 weeks | 90 dollars",
]
ADDRESS_LINES = "Visit us at:\nClearwater Mind Clinic\n123 Example Street\nSan Diego"


def toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", escaped) + '"'


def write_step(folder: Path, subject: str, preheader: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "campaign.toml").write_text(TOML)
    (folder / "01-probe.md").write_text(
        f"+++\nsubject = {toml_string(subject)}\npreheader = {toml_string(preheader)}\n"
        f"day = 0\n+++\n\n{body}",
        encoding="utf-8",
    )


def renderer_for(folder: Path, subject: str, preheader: str, body: str) -> CampaignRenderer:
    write_step(folder, subject, preheader, body)
    return CampaignRenderer(load_campaign(folder), REPO / "templates")


def assert_standards(data: bytes, *, subject: str, name: str, preheader: str) -> str:
    """Check one message against the rules; return its text part as a reader shows it."""
    lines = data.split(b"\r\n")
    assert b"\r" not in b"".join(lines) and b"\n" not in b"".join(lines)  # CRLF only
    assert_wire_clean(data)
    headers = raw_headers(data)
    assert rfc2047(headers["subject"]) == subject
    assert display_name_of(headers["to"]) == (name, "pat@example.com")

    message = parse(data)
    html = message.get_body(("html",)).get_content()
    tree = lxml.html.document_fromstring(html.encode("utf-8"))
    for element in tree.iter():
        for attribute, value in getattr(element, "attrib", {}).items():
            assert "!important" not in value.lower(), (element.tag, attribute, value)
    (hidden,) = tree.find_class("preheader")
    assert hidden.text_content() == preheader + PREHEADER_PADDING
    style = hidden.get("style").replace(" ", "")
    assert "display:none" in style and "mso-hide:all" in style and "color:" not in style

    text_part = message.get_body(("plain",))
    assert text_part.get_param("format") == "flowed"
    flowed = text_part.get_content().replace("\r\n", "\n")
    for line in flowed.split("\n"):
        # Wrapped at 76 unless a single word (a URL) is longer.
        if len(line.rstrip(" ")) > WIDTH:
            assert " " not in line.strip(" >"), line
    return unflow(flowed)


def render_both(compiled, recipient: Recipient) -> list[bytes | str]:
    out: list[bytes | str] = []
    for render in (
        lambda: compiled.render(recipient, now=NOW, message_id="<m@example.com>").data,
        lambda: compiled.render_bytes(recipient, now=NOW, message_id="<m@example.com>")[1],
    ):
        try:
            out.append(render())
        except RenderError as err:
            out.append(type(err).__name__)
    return out


def same_message(full: bytes, fast: bytes) -> None:
    """Both paths: identical headers and identical decoded parts."""
    assert raw_headers(full) == raw_headers(fast)
    parts = [
        [(p.get_content_type(), p.get_content()) for p in parse(data).iter_parts()]
        for data in (full, fast)
    ]
    assert parts[0] == parts[1]


# -- the property test ------------------------------------------------------------------

RTL = st.text(alphabet=st.characters(min_codepoint=0x0590, max_codepoint=0x06FF), max_size=30)
EMOJI = st.text(alphabet=st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), max_size=8)
ANY_SCRIPT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40
)
LONG_WORD = st.integers(60, 400).map(lambda n: "Ü" * (n // 2) + "x" * (n - n // 2))
HOSTILE = st.sampled_from(
    [
        "<b>bold</b> & <script>alert(1)</script>",
        'O\'Brien "Bob"',
        "=?utf-8?b?SGk=?=",
        "\u202eevil\u202c",
        "Ana\u200b",
        "You\x92re",
        "red !important; x",
        "  spaced   out  ",
        "From here",
        "> quoted",
    ]
)
VALUE = st.one_of(HOSTILE, RTL, EMOJI, ANY_SCRIPT, LONG_WORD, st.text(max_size=20))
# Subjects: any script, no template syntax; a few hostile ones that headers must refuse.
SUBJECT_TEXT = st.one_of(
    st.text(
        alphabet=st.characters(
            codec="utf-8", exclude_categories=("Cs", "Cc", "Cf", "Co", "Cn", "Zl", "Zp")
        ),
        max_size=160,
    ).filter(lambda s: "{" not in s and "}" not in s),
    st.sampled_from(
        [
            "Quiz: 7 × 6 =? Answer inside",
            "Réservez dès maintenant votre séance découverte à prix réduit " * 3,
            "x" * 300,
            "You\x92re invited",
        ]
    ),
)
IMPORTANT_STYLE = st.sampled_from(
    [
        "background-color:#fde8e8 !important",
        "width:320px !important",
        "height: 50% ! IMPORTANT",
        "text-align:center !important; vertical-align: top !important",
        "background-color: rgb(1,2,3) !important",
    ]
)


def body_with(style: str, long_word: str) -> str:
    return (
        'Hi {{ subscriber.first_name | default("there") }},\n\n'
        f'<table style="{style}"><tr><td>Boxed</td></tr></table>\n\n'
        f'<p style="{style}">Styled {{{{ subscriber.city }}}} paragraph.</p>\n\n'
        f"{TABLE}\n{ADDRESS}\n"
        f"A long word {long_word} and a sentence that goes on well past the width of a "
        "plain-text reader so that it has to be wrapped at least once, maybe twice.\n\n"
        '<img src="https://example.com/a.png" alt="{{ subscriber.city }}">\n\n'
        "> {{ subscriber.name }} wrote a quote long enough to be wrapped over more than one "
        "line of a plain-text reader, with its marker on every line.\n"
    )


LONG_WORDS = ["plain", "Ü" * 40 + "x" * 60, "https://example.com/" + "a" * 300]
STATIC_SUBJECTS = ["News for", "Quiz: 7 × 6 =? Réponse", "Ü" * 50 + "x" * 50]
_STEPS: dict[tuple[str, str, str], CampaignRenderer] = {}


def step_for(base: Path, subject: str, style: str, long_word: str) -> CampaignRenderer:
    """Steps are few (compiled once each); per-example variety comes from subscriber values."""
    key = (subject, style, long_word)
    if key not in _STEPS:
        _STEPS[key] = renderer_for(
            base / f"s{len(_STEPS)}",
            subject + " {{ subscriber.topic }} {{ subscriber.name }}",
            "Hello {{ subscriber.city }}",
            body_with(style, long_word),
        )
    return _STEPS[key]


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    subject=st.sampled_from(STATIC_SUBJECTS),
    topic=SUBJECT_TEXT,
    style=IMPORTANT_STYLE,
    long_word=st.sampled_from(LONG_WORDS),
    name=VALUE,
    first_name=st.one_of(st.none(), VALUE),
    city=VALUE,
)
def test_every_message_is_standards_clean_on_both_paths(
    tmp_path_factory, subject, topic, style, long_word, name, first_name, city
):
    compiled = step_for(tmp_path_factory.getbasetemp(), subject, style, long_word).step(1)
    fields = {"name": name, "city": city, "topic": topic}
    if first_name is not None:
        fields["first_name"] = first_name
    recipient = Recipient("pat@example.com", fields, "https://news.example.com/u/AbC-123_x")
    full, fast = render_both(compiled, recipient)
    if isinstance(full, str) or isinstance(fast, str):
        assert full == fast  # the same refusal both ways (a header would hold a control)
        return
    same_message(full, fast)
    city_text = clean_text(city)
    text = assert_standards(
        full,
        subject=f"{subject} {topic} {name}",
        name=clean_text(name),
        preheader=f"Hello {city_text}" if city_text else "Hello ",
    )
    for row in ROWS:
        assert f"\n{row}\n" in text
    assert ADDRESS_LINES in text
    assert "\n> " in text  # the quote keeps its marker


# -- each example of the issue, both paths ------------------------------------------------

ANA = Recipient("pat@example.com", {"name": "Ana Lima", "first_name": "Ana"}, "https://e.com/u/t")


@pytest.fixture
def example(tmp_path):
    def make(body: str, subject: str = "Hello", preheader: str = "Quick update"):
        renderer = renderer_for(tmp_path / "campaigns" / "probe", subject, preheader, body)
        compiled = renderer.step(1)
        full, fast = render_both(compiled, ANA)
        assert isinstance(full, bytes) and isinstance(fast, bytes), (full, fast)
        same_message(full, fast)
        return full, fast

    return make


def test_quoted_printable_lines_stop_at_76(example):
    # Item 1: lines ending in white space came out at 77-78 characters.
    body = "\n\n".join(("word " * 14 + "x" * n + " ") for n in range(1, 12)) + "\n"
    for data in example(body):
        for line in data.split(b"\r\n\r\n", 1)[1].split(b"\r\n"):
            assert len(line) <= 76, line


def test_from_and_dot_lines_in_pre_blocks_are_encoded_on_both_paths(example):
    # RFC 2049 section 3 (8): a <pre> line "From here" reached the wire as is in the HTML
    # part, and an mbox delivery shows it as ">From here".
    body = "<pre>\n  def f():\nFrom here\n.\n</pre>\n\nFrom {{ subscriber.first_name }}\n"
    for data in example(body):
        assert_wire_clean(data)
        html = parse(data).get_body(("html",)).get_content().replace("\r\n", "\n")
        assert "\n  def f():\nFrom here\n.\n</pre>" in html


def test_long_accented_subject_is_split_into_short_encoded_words(example):
    # Item 2: a ~150-character subject was one 283-character line, one 140-character word.
    subject = "Réservez dès maintenant votre séance découverte : thérapie à la kétamine " * 2
    subject = subject.strip()
    for data in example("Hi.\n", subject=subject):
        headers = raw_headers(data)
        assert rfc2047(headers["subject"]) == subject
        assert all(len(w) <= 75 for w in ENCODED_WORD.findall(headers["subject"]))
        block = data.split(b"\r\n\r\n", 1)[0]
        assert max(len(line) for line in block.split(b"\r\n")) <= 78


def test_long_non_ascii_display_name_is_split_too(tmp_path):
    renderer = renderer_for(tmp_path / "campaigns" / "probe", "Hi", "Hello", "Hi.\n")
    name = "Maria Fernanda de los Ángeles Gutiérrez-Núñez y Bustamante"
    person = Recipient("pat@example.com", {"name": name}, "https://e.com/u/t")
    for data in render_both(renderer.step(1), person):
        to = raw_headers(data)["to"]
        assert all(len(w) <= 75 for w in ENCODED_WORD.findall(to))
        assert display_name_of(to) == (name, "pat@example.com")


def test_important_never_reaches_an_attribute(example):
    # Item 3: bgcolor="#fde8e8 !important" and width="320px !important".
    body = (
        '<table style="background-color:#fde8e8 !important; width:320px !important">'
        "<tr><td>Note</td></tr></table>\n"
    )
    for data in example(body):
        html = parse(data).get_body(("html",)).get_content()
        table = re.search(r"<table [^>]*>\s*<tr><td>Note", html).group(0)
        assert 'bgcolor="#fde8e8"' in table and 'width="320"' in table
        assert "!important" not in table
        # It stays where it belongs: the @media rules of the layout.
        style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
        assert "!important" in style


def test_important_is_removed_as_a_priority_only_never_from_urls(example):
    # Stripping "!important" anywhere in any attribute changed where a link goes and which
    # image a style loads; only a declaration's priority (before ";" or the end) goes.
    link = "https://example.com/notes/why-this-is!important?x=1"
    image = "https://example.com/img/a!IMPORTANT.png"
    body = (
        f"<table><tr><td style=\"background-image:url('{image}'); color: red ! IMPORTANT\">"
        f'<a href="{link}">Notes</a></td></tr></table>\n'
    )
    for data in example(body):
        html = parse(data).get_body(("html",)).get_content()
        cell = lxml.html.fragment_fromstring(
            re.search(r"<td style=[^>]*>.*?</td>", html, re.S).group(0)
        )
        style = cell.get("style").replace(" ", "")
        assert f"url('{image}')" in style and style.endswith("color:red")
        assert cell.find("a").get("href").startswith(link)  # utm parameters follow


def test_short_preheader_is_padded_past_the_inbox_preview(example):
    # Item 4: "Quick update" was followed by 12 invisible characters, then the body.
    for data in example("This is a test.\n", preheader="Quick update"):
        html = parse(data).get_body(("html",)).get_content()
        hidden = lxml.html.document_fromstring(html.encode()).find_class("preheader")[0]
        content = hidden.text_content()
        assert content.startswith("Quick update")
        padding = content.removeprefix("Quick update")
        assert padding == PREHEADER_PADDING and set(padding) == set(PADDING_UNIT)
        assert len(padding) >= 140  # a desktop preview's worth on its own


def test_no_preheader_no_padding_so_the_preview_shows_the_body(example):
    # `check` warns "no preheader: inboxes will show the first words of the body instead",
    # but 150 invisible characters of padding made the inbox preview blank.
    for data in example("This is a test.\n", preheader=""):
        html = parse(data).get_body(("html",)).get_content()
        hidden = lxml.html.document_fromstring(html.encode()).find_class("preheader")
        assert [h.text_content() for h in hidden] in ([], [""])
        assert PADDING_UNIT not in html


def test_text_part_keeps_table_rows_and_hard_breaks(example):
    # Item 6: a table became one line; a hard break joined an address onto one line.
    for data in example(f"Our programs:\n\n{TABLE}\n{ADDRESS}"):
        text = unflow(parse(data).get_body(("plain",)).get_content())
        assert "\n".join(ROWS) in text
        assert ADDRESS_LINES in text


def test_long_paragraphs_are_flowed_at_76(example):
    sentence = "Ketamine therapy has shown high efficacy in treatment-resistant cases. " * 5
    for data in example(sentence.strip() + "\n"):
        part = parse(data).get_body(("plain",))
        assert part.get_param("format") == "flowed"
        lines = part.get_content().replace("\r\n", "\n").split("\n")
        assert all(len(line) <= 76 for line in lines)
        assert sum(line.endswith(" ") for line in lines) >= 4  # soft breaks
        assert sentence.strip() in unflow(part.get_content())


def test_subject_holding_an_encoded_word_marker_is_encoded_and_sent(example):
    # Item 7: "=?" was refused; it is legal once the header is encoded.
    subject = "Quiz: 7 × 6 =? Answer inside"
    for data in example("Hi.\n", subject=subject):
        assert parse(data)["Subject"] == subject
        assert rfc2047(raw_headers(data)["subject"]) == subject


def test_c1_control_in_the_subject_is_refused_naming_the_subject_line(tmp_path):
    # Item 5: "You\x92re" was sent as You=C2=92re.
    renderer = renderer_for(tmp_path / "campaigns" / "probe", "You\x92re in", "Hi", "Hi.\n")
    compiled = renderer.step(1)
    for render in (compiled.render, compiled.render_bytes):
        with pytest.raises(RenderError) as refused:
            render(ANA, now=NOW)
        assert "U+0092" in refused.value.message and refused.value.line == 2


def test_invisible_characters_in_subscriber_values_are_dropped_from_bodies(tmp_path):
    renderer = renderer_for(
        tmp_path / "campaigns" / "probe", "Hi", "Hello {{ subscriber.city }}", "Hi.\n"
    )
    person = Recipient("pat@example.com", {"name": "Ana\u200b", "city": "Os\u202elo\x92"}, "u")
    full, fast = render_both(renderer.step(1), person)
    same_message(full, fast)
    assert_standards(full, subject="Hi", name="Ana", preheader="Hello Oslo")


def test_presentational_attributes_hold_only_values_html_allows(example):
    # The layout's img { height: auto } became height="auto" on every Markdown image,
    # which no HTML version allows (and preflight blamed html-height on the step).
    body = (
        "![A garden](https://example.com/garden.png)\n\n"
        '<img src="https://example.com/logo.png" alt="Logo" width="120" height="40">\n'
    )
    for data in example(body):
        tree = lxml.html.document_fromstring(parse(data).get_body(("html",)).get_content())
        garden, logo = tree.iter("img")
        assert garden.get("height") is None
        # What the author wrote stays.
        assert (logo.get("width"), logo.get("height")) == ("120", "40")


def test_long_words_urls_and_pre_lines_stay_inside_a_phone_screen(example, browser):
    # A pasted 2,000-character URL, a 500-character word or a long <pre> line made the
    # whole email 8,500 px wide: readers had to scroll sideways to read any of it.
    url = "https://example.com/" + "a" * 980 + "?q=" + "b" * 1000
    body = (
        f"See {url} or [the long link]({url}).\n\n{'x' * 500}\n\n"
        f"<pre>\n  return {'y' * 200}\n</pre>\n"
    )
    page = browser.new_page(viewport={"width": 375, "height": 800})
    try:
        for data in example(body):
            message = parse(data)
            page.set_content(message.get_body(("html",)).get_content())
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, width
            pre = page.locator("pre").inner_text()
            assert f"  return {'y' * 200}" in pre  # wrapped on screen, not reflowed
    finally:
        page.close()
