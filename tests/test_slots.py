"""The fast path itself: where a marker sits, how a value is placed there, and that plain
values really take the fast path (the other render tests would pass on a fast path that
always gave up, since render_bytes then falls back to the full render)."""

from __future__ import annotations

import email
import email.policy
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dripline._slots import ATTRIBUTE, RAW, TEXT, URL, _context_at, _place
from dripline.campaign import load_campaign
from dripline.errors import RenderError
from dripline.render import CampaignRenderer, Recipient

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 5, 17, 0, tzinfo=UTC)
MID = "<m@example.com>"


@pytest.mark.parametrize(
    ("html", "context"),
    [
        ("M", TEXT),  # nothing before it at all
        ("<p>M</p>", TEXT),
        ("<p>a</p>M<p>", TEXT),
        ("M<!-- later -->", TEXT),
        ("<!--M-->", RAW),  # a comment that starts the document
        ("<p><!-- M --></p>", RAW),
        ("<!--a--><!--M", RAW),  # the latest comment counts, not the first
        ("<!--a--><!--b-->M", TEXT),
        ("<!--M-->x-->", RAW),
        ("<style>M</style>", RAW),
        ("<p><style>p{}</style>M", TEXT),
        ("<style></style><style>M", RAW),
        ("M<style>", TEXT),
        ("<p><script>var a = 'M'</script>", RAW),
        ("<script></script>M</script>", TEXT),
        ('<a href="M">', URL),
        ('<a href="M" class="x">text</a>', URL),
        ("<A HREF='M'>", URL),
        ("<img src=M>", URL),
        ('<p><a title="t" href="https://x/?r=M">', URL),
        ('<td title="M">', ATTRIBUTE),
        ('<td style="color: M">', ATTRIBUTE),
        ("<td M>", ATTRIBUTE),  # no attribute name before it
        ('<a href="x">M</a>', TEXT),
        ("<a>M<b", TEXT),
    ],
)
def test_a_markers_context_is_where_it_sits(html: str, context: str) -> None:
    assert _context_at(html, html.index("M")) == context


@pytest.mark.parametrize(
    ("value", "context", "placed"),
    [
        ("Ada & <Bob>", TEXT, "Ada &amp; &lt;Bob&gt;"),
        ("Ada Lovelace", ATTRIBUTE, "Ada Lovelace"),
        ('say "hi"', ATTRIBUTE, None),  # quotes: libxml2 would write &quot;
        ("50% off!", ATTRIBUTE, None),  # "!" goes with !important in an attribute
        ("a-b_c.d/e?f=1#g", URL, "a-b_c.d/e?f=1#g"),
        ("a b", URL, None),  # a space in a URL is written %20
        ("Ada Lovelace", RAW, "Ada Lovelace"),
        ("a--b", RAW, None),  # could end a comment early
    ],
)
def test_a_value_is_written_as_the_full_path_would_or_not_at_all(
    value: str, context: str, placed: str | None
) -> None:
    assert _place(value, context) == placed


def summary(data: bytes) -> dict[str, object]:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert not message.defects
    headers = {k: str(v).strip() for k, v in message.items() if k != "Content-Type"}
    parts = [(p.get_content_type(), p.get_content()) for p in message.iter_parts()]
    return {"headers": headers, "parts": parts}


@pytest.fixture(scope="module")
def ketamine() -> CampaignRenderer:
    return CampaignRenderer(
        load_campaign(REPO / "campaigns" / "ketamine-therapy"), REPO / "templates"
    )


@pytest.mark.parametrize("first_name", ["Ada", "Ada & <Co>"])
def test_plain_values_take_the_fast_path_and_match_the_full_render(
    ketamine: CampaignRenderer, first_name: str
) -> None:
    recipient = Recipient(
        "ada@example.com",
        {"name": "Ada Lovelace", "first_name": first_name, "city": "Paris"},
        "https://news.example.com/u/AbC-123_x",
    )
    for compiled in ketamine.compile_all():
        assert compiled.slotted is not None
        fast = compiled.slotted.render(recipient, NOW, MID)
        assert fast is not None, compiled.step.name
        full = compiled.render(recipient, now=NOW, message_id=MID).data
        assert summary(fast) == summary(full), compiled.step.name
        assert first_name.split()[0].encode() in fast


def _probe(tmp_path: Path, subject: str, body: str) -> CampaignRenderer:
    folder = tmp_path / "campaigns" / "probe"
    folder.mkdir(parents=True)
    (folder / "campaign.toml").write_text(
        (REPO / "campaigns" / "ketamine-therapy" / "campaign.toml").read_text()
    )
    (folder / "01-probe.md").write_text(
        f'+++\nsubject = "{subject}"\npreheader = "Hello"\nday = 0\n+++\n\n{body}\n'
    )
    return CampaignRenderer(load_campaign(folder), REPO / "templates")


def test_subject_and_link_values_on_the_fast_path(tmp_path: Path) -> None:
    renderer = _probe(
        tmp_path,
        "For {{ subscriber.email }} in {{ subscriber.city }}",
        "Hi {{ subscriber.first_name }}: [page](https://example.com/p?ref={{ subscriber.ref }})",
    )
    (compiled,) = renderer.compile_all()
    assert compiled.slotted is not None

    def recipient(ref: str, city: str = "Paris") -> Recipient:
        fields = {"name": "Ada", "first_name": "Ada", "city": city, "ref": ref}
        return Recipient("ada@example.com", fields, "https://news.example.com/u/k")

    fast = compiled.slotted.render(recipient("abc-1"), NOW, MID)
    assert fast is not None
    full = compiled.render(recipient("abc-1"), now=NOW, message_id=MID).data
    assert summary(fast) == summary(full)
    assert summary(fast)["headers"]["Subject"] == "For ada@example.com in Paris"
    assert b"ref=3Dabc-1" in fast or b"ref=abc-1" in fast
    # A value the fast path cannot place byte for byte: the full path.
    assert compiled.slotted.render(recipient("a b"), NOW, MID) is None


def _ada(**fields: str) -> Recipient:
    values = {"name": "Ada", "first_name": "Ada", "city": "Paris", "ref": "r1", **fields}
    return Recipient("ada@example.com", values, "https://news.example.com/u/k")


def test_a_text_layout_that_prints_the_subject_and_preheader_gets_them_on_the_fast_path(
    tmp_path: Path,
) -> None:
    # templates/ belongs to the project: a plain-text layout may start with the subject
    # and the preheader, as the HTML one does.
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    layout = templates / "base.txt"
    layout.write_text("{{ subject }}\n{{ preheader }}\n\n" + layout.read_text())
    renderer = _probe(tmp_path, "News for Paris", "Hi {{ subscriber.first_name }}.")
    renderer = CampaignRenderer(renderer.campaign, templates)
    (compiled,) = renderer.compile_all()
    assert compiled.slotted is not None
    fast = compiled.slotted.render(_ada(), NOW, MID)
    assert fast is not None
    assert summary(fast) == summary(compiled.render(_ada(), now=NOW, message_id=MID).data)
    text = email.message_from_bytes(fast, policy=email.policy.default)
    plain = text.get_body(("plain",)).get_content()
    assert plain.replace("\r\n", "\n").startswith("News for Paris\nHello")


def test_a_filtered_value_that_only_jinja_can_evaluate_matches_the_full_render(
    tmp_path: Path,
) -> None:
    body = 'Hi {{ subscriber.first_name | default("there") | title }}, in {{ subscriber.city }}.'
    (compiled,) = _probe(tmp_path, "Hello", body).compile_all()
    assert compiled.slotted is not None
    for recipient, greeting in (
        (_ada(first_name="ada lovelace"), "Hi Ada Lovelace, in Paris."),
        (Recipient("x@example.com", {"city": "Oslo"}, "https://e.com/u/k"), "Hi There, in Oslo."),
    ):
        fast = compiled.slotted.render(recipient, NOW, MID)
        assert fast is not None
        assert summary(fast) == summary(compiled.render(recipient, now=NOW, message_id=MID).data)
        assert greeting in summary(fast)["parts"][0][1]


def test_no_quoted_printable_line_is_over_76_whatever_the_text_before_a_value(
    tmp_path: Path,
) -> None:
    # A static run is followed by a soft line break where a subscriber's value starts:
    # its last line must leave a column for the "=" (RFC 2045 6.7: at most 76). One
    # length of text before the value per column, so one of them ends at column 76.
    body = "\n\n".join(
        f"{'w' * n}{{{{ subscriber.first_name }}}}{'v' * (75 - n)}" for n in range(40, 116)
    )
    (compiled,) = _probe(tmp_path, "Hello", body).compile_all()
    assert compiled.slotted is not None
    fast = compiled.slotted.render(_ada(), NOW, MID)
    assert fast is not None
    assert summary(fast) == summary(compiled.render(_ada(), now=NOW, message_id=MID).data)
    too_long = [line for line in fast.split(b"\r\n") if len(line) > 76]
    assert too_long == []


def test_a_value_that_fails_on_the_fast_path_fails_as_on_the_full_path(tmp_path: Path) -> None:
    # The error names the step's file and says why, the same words both ways.
    (compiled,) = _probe(tmp_path, "Hello", "Hi {{ subscriber.first_name | upper }}.").compile_all()
    assert compiled.slotted is not None
    nameless = Recipient("x@example.com", {"city": "Oslo"}, "https://e.com/u/k")
    errors = []
    for render in (compiled.render_bytes, compiled.render):
        with pytest.raises(RenderError) as caught:
            render(nameless, now=NOW, message_id=MID)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert "01-probe.md" in errors[0]
    assert "cannot render: 'dict object' has no attribute 'first_name'" in errors[0]


def test_an_empty_value_alone_in_a_paragraph_renders_as_the_full_path_does(
    tmp_path: Path,
) -> None:
    # Markdown drops a paragraph that renders empty; a value substituted into it would
    # leave an empty <p>: so an empty value sends that subscriber down the full path.
    body = 'Hi.\n\n{{ subscriber.nickname | default("") }}\n\nBye.'
    (compiled,) = _probe(tmp_path, "Hello", body).compile_all()
    assert compiled.slotted is not None
    empty = _ada()  # no nickname: the value is ""
    _, data = compiled.render_bytes(empty, now=NOW, message_id=MID)
    assert summary(data) == summary(compiled.render(empty, now=NOW, message_id=MID).data)


@pytest.mark.parametrize("length", range(70, 82))
def test_a_long_value_keeps_every_quoted_printable_line_within_76(
    tmp_path: Path, length: int
) -> None:
    (compiled,) = _probe(tmp_path, "Hello", "Hi {{ subscriber.first_name }}.").compile_all()
    assert compiled.slotted is not None
    long_name = _ada(first_name="n" * length)
    fast = compiled.slotted.render(long_name, NOW, MID)
    assert fast is not None
    assert summary(fast) == summary(compiled.render(long_name, now=NOW, message_id=MID).data)
    assert [line for line in fast.split(b"\r\n") if len(line) > 76] == []


def test_a_missing_value_is_the_full_paths_error_not_the_word_none(tmp_path: Path) -> None:
    # `{{ subscriber.first_name }}` for someone without one: Jinja's strict undefined
    # error on both paths (never "Hi None." in the email).
    (compiled,) = _probe(tmp_path, "Hello", "Hi {{ subscriber.first_name }}.").compile_all()
    assert compiled.slotted is not None
    nameless = Recipient("x@example.com", {"city": "Oslo"}, "https://e.com/u/k")
    errors = []
    for render in (compiled.render_bytes, compiled.render):
        with pytest.raises(RenderError) as caught:
            render(nameless, now=NOW, message_id=MID)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert "'dict object' has no attribute 'first_name'" in errors[0]
