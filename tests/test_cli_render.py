"""`dripline render` on the real ketamine campaign: parse every .eml back and check it."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dripline._flowed import unflow
from dripline.cli import main

REPO = Path(__file__).resolve().parent.parent
ARTICLE = (Path(__file__).parent / "fixtures" / "ketamine-therapy-article.txt").read_text()
HEADINGS = [
    "Rapid Relief From Symptoms",
    "High Efficacy in Treatment-Resistant Cases",
    "Promotes Neuroplasticity for Long-Term Benefits",
    "Lowers the Risk of Side Effects Compared to Traditional Antidepressants",
    "Supports Holistic Mental Health Improvement",
    "Enhances Effectiveness of Other Therapies",
]
LEFTOVERS = ["Advertisement", "Related Articles", "Latest Articles"]


def first_sentence(heading: str) -> str:
    """The first sentence after ``heading`` in the article (the sixth is glued to it)."""
    after = ARTICLE.split(heading, 1)[1].lstrip()
    return re.match(r"(.+?[.!?])\s", after).group(1)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("out")
    result = CliRunner().invoke(
        main, ["--root", str(REPO), "render", "ketamine-therapy", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return {p.name: p for p in out.iterdir()}


def plain(message: email.message.EmailMessage) -> str:
    """The text part as a format=flowed reader shows it."""
    part = message.get_body(("plain",))
    assert part.get_param("format") == "flowed"
    return unflow(part.get_content())


def messages(rendered: dict[str, Path]) -> list[email.message.EmailMessage]:
    names = sorted(n for n in rendered if n.endswith(".eml"))
    return [
        email.message_from_bytes(rendered[n].read_bytes(), policy=email.policy.default)
        for n in names
    ]


def test_six_files_of_each_kind_in_order(rendered):
    for suffix in (".html", ".txt", ".eml"):
        names = sorted(n for n in rendered if n.endswith(suffix))
        assert [n[:2] for n in names] == ["01", "02", "03", "04", "05", "06"]


def test_each_email_holds_its_reason(rendered):
    for number, (message, heading) in enumerate(
        zip(messages(rendered), HEADINGS, strict=True), start=1
    ):
        assert message["Subject"].startswith(f"Reason {number} of 6: ")
        assert message["Subject"].lower().endswith(heading.lower())
        text = plain(message)
        html = message.get_body(("html",)).get_content()
        assert f"## {heading}" in text
        assert first_sentence(heading) in text
        assert heading in html
        # One reason per email: no other reason's heading appears.
        for other in HEADINGS:
            if other != heading:
                assert f"## {other}" not in text


def test_first_email_opens_with_the_introduction(rendered):
    intro = ARTICLE.split("\n\n")[1].strip()
    text = plain(messages(rendered)[0])
    assert intro in text
    assert text.index(intro) < text.index("## Rapid Relief From Symptoms")


def test_sixth_heading_is_separated_from_its_paragraph(rendered):
    text = plain(messages(rendered)[5])
    assert "## Enhances Effectiveness of Other Therapies\n\nKetamine therapy not only" in text
    assert "TherapiesKetamine" not in text


def test_no_web_page_leftovers(rendered):
    for path in rendered.values():
        content = path.read_text(encoding="utf-8", errors="replace")
        for leftover in LEFTOVERS:
            assert leftover not in content, (path.name, leftover)


def test_headers_are_complete_and_valid(rendered):
    for path in sorted(p for n, p in rendered.items() if n.endswith(".eml")):
        raw = path.read_bytes()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert not message.defects
        assert message["From"].addresses[0].addr_spec == "hello@example.com"
        assert message["To"].addresses[0].addr_spec == "maria@example.com"
        assert message["Date"].datetime is not None
        assert re.fullmatch(r"<[0-9a-f]{32}@example\.com>", message["Message-ID"])
        assert message["List-Id"].endswith("<ketamine-therapy.example.com>")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # The raw header holds the URL itself (not RFC 2047-encoded): clients parse it as is.
        # It may be folded between its two URLs (RFC 5322 folding white space).
        unfolded = re.sub(rb"\r\n(?=[ \t])", b"", raw)
        raw_unsubscribe = re.search(rb"^List-Unsubscribe: (.*?)\r?$", unfolded, re.MULTILINE).group(
            1
        )
        url, mailto = re.fullmatch(
            rb"<(http[^>]+/u/[\w-]+)>, <(mailto:[^>]+)>", raw_unsubscribe
        ).groups()
        assert mailto.startswith(b"mailto:hello@example.com")
        assert message.get_content_type() == "multipart/alternative"
        parts = list(message.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        assert all(p.get_content_charset() == "utf-8" for p in parts)
        html = parts[1].get_content()
        # The footer's unsubscribe link is the header's URL, without tracking parameters.
        assert f'href="{url.decode()}"' in html
        assert url.decode() in parts[0].get_content()
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998
        assert len(raw) < 102 * 1024


def test_styles_are_inlined_and_media_queries_kept(rendered):
    html = rendered["01-rapid-relief.html"].read_text()
    assert re.search(r'<h2 style="[^"]*font-size:22px', html)
    assert re.search(r'<td class="content" style="[^"]*padding:32px', html)
    assert re.search(r'<p style="[^"]*margin:0 0 16px 0', html)
    style_blocks = re.findall(r"<style>(.*?)</style>", html, re.S)
    kept = "".join(style_blocks)
    assert "@media only screen and (max-width: 620px)" in kept
    assert "!important" in kept
    assert "font-size: 22px" not in kept  # inlined rules leave the style block
    for marker in ('role="presentation"', 'lang="en"', 'name="color-scheme"', "<!--[if mso]>"):
        assert marker in html
    assert 'class="preheader"' in html


def test_body_links_carry_utm_parameters(rendered):
    html = rendered["06-other-therapies.html"].read_text()
    link = re.search(r'href="(https://www\.example\.com/find-a-clinician[^"]*)"', html).group(1)
    assert "utm_source=dripline" in link and "utm_campaign=ketamine-therapy" in link
    unsubscribe = re.search(r'href="([^"]*/u/[^"]*)"', html).group(1)
    assert "utm_" not in unsubscribe


def render_for(tmp_path: Path, subscriber_json: str):
    """`dripline render` into tmp_path/o for the subscriber described by ``subscriber_json``."""
    subscriber = tmp_path / "sub.json"
    subscriber.write_text(subscriber_json)
    command = ["--root", str(REPO), "render", "ketamine-therapy", "--out", str(tmp_path / "o")]
    return subscriber, CliRunner().invoke(main, [*command, "--subscriber", str(subscriber)])


def test_render_for_a_subscriber_file(tmp_path):
    _, result = render_for(
        tmp_path, '{"email": "kim@example.org", "name": "Kim Park", "first_name": "Kim"}'
    )
    assert result.exit_code == 0, result.output
    message = email.message_from_bytes(
        (tmp_path / "o" / "02-treatment-resistant.eml").read_bytes(), policy=email.policy.default
    )
    assert str(message["To"]) == "Kim Park <kim@example.org>"
    assert plain(message).startswith("Hi Kim,")


def test_fallback_greeting_without_first_name(tmp_path):
    _, result = render_for(tmp_path, '{"email": "anon@example.org"}')
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "01-rapid-relief.txt").read_text().startswith("Hi there,")


def test_bad_subscriber_file_is_one_clear_error(tmp_path):
    subscriber, result = render_for(tmp_path, '{"email": "x@example.org",\n "name": }')
    assert result.exit_code == 1
    assert f"Error: {subscriber}:2: invalid JSON" in result.output
    assert "Traceback" not in result.output


def test_copied_project_renders_too(tmp_path):
    for name in ("campaigns", "templates"):
        shutil.copytree(REPO / name, tmp_path / name)
    result = CliRunner(env={"DRIPLINE_ROOT": str(tmp_path)}).invoke(
        main, ["render", "ketamine-therapy", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "o").glob("*.eml"))) == 6


def test_link_tracking_keeps_existing_query_strings_byte_for_byte():
    from dripline.markdown import add_link_tracking, markdown_to_html_template

    body = markdown_to_html_template(
        "[a](https://x.com/p?off=50%25) [b](https://x.com/?q=%7B%7Bx%7D%7D#top) "
        "[c](https://x.com/?utm_source=mine) [d](mailto:a@example.com)"
    )
    tagged = add_link_tracking(body, {"utm_source": "dripline", "utm_medium": "e mail"})
    assert (
        'href="https://x.com/p?off=50%25&amp;utm_source=dripline&amp;utm_medium=e+mail"' in tagged
    )
    assert "q=%7B%7Bx%7D%7D&amp;utm_source=dripline" in tagged and "#top" in tagged
    assert "{{" not in tagged
    assert 'href="https://x.com/?utm_source=mine&amp;utm_medium=e+mail"' in tagged
    assert 'href="mailto:a@example.com"' in tagged
