"""`dripline check` reports what makes an email hard to read or hear, with file and line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from dripline.cli import main

STEP = "campaigns/ketamine-therapy/03-neuroplasticity.md"


def findings(project: Path, rule: str) -> list[dict]:
    result = CliRunner().invoke(
        main, ["--root", str(project), "check", "--json", "ketamine-therapy"]
    )
    assert "Traceback" not in result.output
    return [f for f in json.loads(result.stdout) if f["rule"] == rule]


def append_to_body(project: Path, text: str) -> Path:
    path = project / STEP
    path.write_text(path.read_text(encoding="utf-8") + "\n" + text + "\n", encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    text = path.read_text(encoding="utf-8")
    return text[: text.index(needle)].count("\n") + 1


def test_the_ketamine_campaign_has_no_accessibility_findings(project):
    result = CliRunner().invoke(main, ["--root", str(project), "check", "--json"])
    assert not [f for f in json.loads(result.stdout) if f["rule"].startswith("a11y-")]


def test_grey_on_white_text_is_reported_with_its_line_and_ratio(project):
    path = append_to_body(
        project,
        '<p style="color:#aaaaaa">Faint small print.</p>\n\n'
        '<p style="color:#949494; font-size:24px">Large grey heading-size text.</p>\n\n'
        '<p style="color:#949494">The same grey, small.</p>',
    )
    found = findings(project, "a11y-contrast")
    messages = {f["line"]: f["message"] for f in found}
    faint = line_of(path, "Faint small print")
    assert "#aaa on #fff has contrast 2.32:1, below WCAG AA 4.5:1" in messages[faint]
    assert all(f["file"] == str(path) and f["severity"] == "warning" for f in found)
    # Premailer writes #aaaaaa as #aaa. #949494 on white is 3.03:1: enough for 24px text
    # (3:1), not for body text (4.5:1).
    assert line_of(path, "Large grey") not in messages
    assert "3.03:1, below WCAG AA 4.5:1" in messages[line_of(path, "The same grey")]


def test_hsl_colours_and_transparent_backgrounds_are_judged(project):
    path = append_to_body(
        project,
        '<p style="color: hsl(0, 0%, 60%)">Grey in hsl.</p>\n\n'
        '<div style="background-color: transparent"><p style="color:#aaaaaa">Through a '
        "transparent box.</p></div>\n\n"
        '<div style="background: rgba(0,0,0,0)"><p style="color:#aaaaaa">Through an '
        "invisible box.</p></div>\n\n"
        '<p style="color: hsl(120deg 100% 20%)">Dark green in hsl.</p>',
    )
    messages = {f["line"]: f["message"] for f in findings(project, "a11y-contrast")}
    # hsl(0, 0%, 60%) is #999: 2.85:1 on white.
    assert "2.85:1, below WCAG AA 4.5:1" in messages[line_of(path, "Grey in hsl")]
    # A transparent box shows the white card under it: #aaa on white is 2.32:1.
    assert "2.32:1" in messages[line_of(path, "Through a transparent")]
    assert "2.32:1" in messages[line_of(path, "Through an invisible")]
    assert line_of(path, "Dark green") not in messages  # #006600 on white: 7.1:1


def test_hidden_text_is_not_judged(project):
    append_to_body(project, '<div style="display:none; color:#ffffff">Hidden note</div>')
    assert not findings(project, "a11y-contrast")


def test_links_that_say_nothing_are_reported_with_their_lines(project):
    path = append_to_body(
        project,
        "To book a call, [click here](https://example.com/book).\n\n"
        "[Read more](https://example.com/more)\n\n"
        "<https://example.com/bare>\n\n"
        "[Book a free consultation](https://example.com/consult)",
    )
    found = {f["line"]: f["message"] for f in findings(project, "a11y-link-text")}
    assert "link text 'click here' says nothing on its own" in found[line_of(path, "click here")]
    assert "link text 'Read more' says nothing" in found[line_of(path, "[Read more]")]
    assert "is a bare URL" in found[line_of(path, "<https://example.com/bare>")]
    assert len(found) == 3  # the descriptive link is fine


def test_a_skipped_heading_level_is_reported_at_its_line(project):
    path = append_to_body(project, "#### Dosing details\n\nText.\n\n### Back on track")
    found = findings(project, "a11y-heading-order")
    assert [(f["line"], f["message"]) for f in found] == [
        (line_of(path, "#### Dosing"), "heading h4 'Dosing details' follows h2: it skips h3")
    ]


def test_layout_tables_need_role_presentation(project):
    path = append_to_body(
        project,
        "<table><tr><td>Left</td><td>Right</td></tr></table>\n\n"
        "<table><tr><th>Dose</th><th>Week</th></tr><tr><td>1</td><td>2</td></tr></table>",
    )
    found = findings(project, "a11y-layout-table")
    assert [f["line"] for f in found] == [line_of(path, "<table><tr><td>Left")]


def test_missing_lang_is_reported_at_the_layouts_html_element(project):
    layout = project / "templates" / "base.html"
    text = layout.read_text(encoding="utf-8").replace(' lang="{{ campaign.lang }}"', "")
    layout.write_text(text, encoding="utf-8")
    found = findings(project, "a11y-lang")
    assert [(f["file"], f["line"]) for f in found] == [(str(layout), line_of(layout, "<html"))]
