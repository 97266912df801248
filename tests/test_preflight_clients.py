"""`dripline check` looks every feature of the sent HTML up in caniemail's data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from dripline.cli import main
from dripline.preflight import IGNORE_DIRECTIVE, snapshot_info

ROOT = Path(__file__).resolve().parent.parent
STEP = "campaigns/ketamine-therapy/03-neuroplasticity.md"


# Every construct a marketer's Markdown can produce, so the layout's CSS for each
# (img, blockquote, lists, code, tables, rules) ends up in the sent HTML.
MARKDOWN_TOUR = """## A section

Text with **bold**, *emphasis*, `code` and [the clinic's page](https://example.com/clinic).

> A quoted sentence.

- one
- two

1. first
2. second

![A photo of the clinic's garden](https://example.com/garden.png)

---

```
a code block
```
"""


def check(project: Path, *args: str):
    result = CliRunner().invoke(main, ["--root", str(project), "check", *args, "ketamine-therapy"])
    assert "Traceback" not in result.output
    return result


def append_to_body(project: Path, text: str) -> Path:
    path = project / STEP
    path.write_text(path.read_text(encoding="utf-8") + "\n" + text + "\n", encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    text = path.read_text(encoding="utf-8")
    return text[: text.index(needle)].count("\n") + 1


def json_findings(project: Path) -> list[dict]:
    result = check(project, "--json")
    return json.loads(result.stdout)


def test_flex_and_absolute_position_in_a_step_are_reported_for_outlook_windows(project):
    path = append_to_body(
        project,
        '<div style="display:flex; gap:8px">\n<p>One</p><p>Two</p>\n</div>\n\n'
        '<div style="position:absolute; top:0">Badge</div>',
    )
    result = check(project)
    assert result.exit_code == 0, result.output  # warnings only
    flex = re.search(rf"{re.escape(str(path))}:(\d+): warning: display:flex: .*", result.output)
    absolute = re.search(
        rf"{re.escape(str(path))}:(\d+): warning: position:absolute: .*", result.output
    )
    assert flex and absolute, result.output
    assert int(flex.group(1)) == line_of(path, "display:flex")
    assert int(absolute.group(1)) == line_of(path, "position:absolute")
    assert "not supported in" in flex.group(0) and "Outlook Windows" in flex.group(0)
    # The layout's own display:none (the preheader) stays the layout's, not this step's.
    assert "display:none" not in result.output
    assert "Outlook Windows" in absolute.group(0).split(";")[0]  # among the unsupported
    # Partial support says which part (Apple Mail: relative and absolute, not sticky/fixed).
    assert "only partly supported in Apple Mail iOS, Apple Mail macOS" in absolute.group(0)
    assert "Supports `relative`, `absolute` but not `sticky` and `fixed`" in absolute.group(0)
    # The same in --json, with caniemail's client ids.
    by_rule = [f for f in json_findings(project) if f["rule"] == "client-support"]
    flex_json = next(f for f in by_rule if f["message"].startswith("display:flex"))
    assert flex_json["file"] == str(path) and flex_json["line"] == int(flex.group(1))
    assert "outlook.windows" in flex_json["clients"]
    assert flex_json["step"] == 3 and flex_json["severity"] == "warning"


def test_the_shipped_layout_has_no_unexplained_gap_for_the_default_clients(project):
    result = check(project)
    assert result.exit_code == 0
    assert "is not supported in" not in result.output
    assert "only partly supported" not in result.output


def test_a_step_using_every_markdown_construct_meets_no_unexplained_layout_gap(project):
    path = append_to_body(project, MARKDOWN_TOUR)
    found = [f for f in json_findings(project) if f["rule"] == "client-support"]
    # Only what the step itself chose (lists) is reported, at the step's own line; no
    # invalid height="auto" attribute from the inliner blamed on the step.
    assert [(f["file"], f["line"]) for f in found] == [(str(path), line_of(path, "- one"))]


def test_the_layouts_ignore_list_is_exactly_what_it_needs_and_each_is_justified(project):
    layout = project / "templates" / "base.html"
    text = layout.read_text(encoding="utf-8")
    directive = IGNORE_DIRECTIVE.search(text)
    assert directive is not None
    listed = set(re.findall(r"\b(?:css|html|image)-[a-z0-9-]+[a-z0-9]", directive.group(1)))
    layout.write_text(text.replace(directive.group(0), ""), encoding="utf-8")
    append_to_body(project, MARKDOWN_TOUR)
    reported = {
        re.search(r"\(((?:css|html|image)-[a-z0-9-]+)\) is ", f["message"]).group(1)
        for f in json_findings(project)
        if f["rule"] == "client-support" and f["file"] == str(layout)
    }
    assert reported == listed  # nothing silenced that does not need it, nothing missed
    docs = (ROOT / "docs" / "preflight.md").read_text(encoding="utf-8")
    section = docs.split("## The shipped layout", 1)[1]
    for feature in listed:
        row = re.search(rf"^\| [^|]*`{feature}`[^|]*\|([^|]+)\|([^|]+)\|", section, re.M)
        assert row and row.group(2).strip(), f"{feature} is not justified in docs/preflight.md"


def test_an_ignore_comment_in_a_step_silences_that_feature_there(project):
    append_to_body(
        project,
        "{# caniemail-ignore css-display-flex: falls back to stacked blocks #}\n"
        '<div style="display:flex">Row</div>',
    )
    result = check(project)
    assert "display:flex" not in result.output


def test_target_clients_come_from_the_lint_table(project):
    toml = project / "campaigns" / "ketamine-therapy" / "campaign.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8") + '\n[lint]\nclients = ["outlook.windows"]\n',
        encoding="utf-8",
    )
    append_to_body(project, '<div style="display:flex">Row</div>')
    flex = next(f for f in json_findings(project) if f["message"].startswith("display:flex"))
    assert flex["clients"] == ["outlook.windows"]
    assert flex["message"].endswith("is not supported in Outlook Windows")
    # A family names all its platforms; Apple Mail supports flexbox, so no warning.
    text = toml.read_text(encoding="utf-8").replace('["outlook.windows"]', '["apple-mail"]')
    toml.write_text(text, encoding="utf-8")
    assert not [f for f in json_findings(project) if f["rule"] == "client-support"]


def test_an_unknown_client_is_an_error_at_its_line(project):
    toml = project / "campaigns" / "ketamine-therapy" / "campaign.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8") + '\n[lint]\nclients = ["gmail", "lotus-notes"]\n',
        encoding="utf-8",
    )
    result = check(project)
    assert result.exit_code == 1
    assert f"{toml}:{line_of(toml, 'clients =')}: error: unknown client 'lotus-notes'" in (
        result.output
    )


def test_a_misspelt_client_gets_a_suggestion(project):
    toml = project / "campaigns" / "ketamine-therapy" / "campaign.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8") + '\n[lint]\nclients = ["gmial", "outlook.windwos"]\n',
        encoding="utf-8",
    )
    result = check(project)
    assert result.exit_code == 1
    assert "unknown client 'gmial' in [lint] clients; did you mean 'gmail'?" in result.output
    assert "did you mean 'outlook.windows'?" in result.output


def test_a_bad_lint_table_is_reported_with_its_line(project):
    toml = project / "campaigns" / "ketamine-therapy" / "campaign.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8") + '\n[lint]\nspam_threshold = "high"\n',
        encoding="utf-8",
    )
    result = check(project)
    assert result.exit_code == 1
    assert f"{toml}:{line_of(toml, 'spam_threshold')}: error: lint.spam_threshold must be" in (
        result.output
    )


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_a_spam_threshold_that_can_never_be_crossed_is_refused(project, value):
    # nan compares false with every score (never an error); inf is never exceeded.
    toml = project / "campaigns" / "ketamine-therapy" / "campaign.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8") + f"\n[lint]\nspam_threshold = {value}\n",
        encoding="utf-8",
    )
    result = check(project)
    assert result.exit_code == 1
    assert f"{toml}:{line_of(toml, 'spam_threshold')}: error: lint.spam_threshold must be" in (
        result.output
    )


def test_the_snapshot_names_its_source_date_and_licence():
    info = snapshot_info()
    assert info["source"] == "https://github.com/hteumeuleu/caniemail"
    assert re.fullmatch(r"[0-9a-f]{40}", info["commit"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", info["date"])
    licence = ROOT / "dripline" / "preflight" / "data" / "caniemail-LICENSE.txt"
    assert "MIT License" in licence.read_text(encoding="utf-8")


def test_hostile_html_and_css_in_a_step_never_stop_the_check(project):
    path = append_to_body(
        project,
        '<div style="color:;;:display:flex(((; font-size: 1e999px; font-weight: 99999">A</div>\n\n'
        '<p style="color: rgb(999, -1, x); background: url(data:image/png;base64,AAAA;)">B</p>\n\n'
        "<style>@media (prefers-color-scheme: dark) { .x { color: red; } .y { { ( }</style>\n\n"
        '<table><tr><td style="position:absolute">unclosed <b><i>tags\n\n'
        "[link](https://example.com/after)",
    )
    result = check(project, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    # Everything that can be judged still is: the absolute position, the late <style>.
    absolute = [f for f in found if f["message"].startswith("position:absolute")]
    assert absolute and absolute[0]["line"] == line_of(path, "position:absolute")
    assert any("prefers-color-scheme" in f["message"] for f in found)


def test_a_markdown_list_or_quote_after_a_blank_line_is_reported_at_its_own_line(project):
    path = append_to_body(project, "Intro line.\n\n\n- first item\n- second item")
    found = [f for f in json_findings(project) if f["rule"] == "client-support"]
    lists = next(f for f in found if f["message"].startswith("<ul>"))
    assert lists["file"] == str(path)
    assert lists["line"] == line_of(path, "- first item")
    # caniemail's notes say which part is missing (the snapshot keeps them).
    assert "reversed" in lists["message"]


def test_important_is_blamed_only_where_it_reaches_the_email(project):
    # The inliner strips !important from a step's style="" (it would beat the dark-mode
    # rules), so the layout's @media !important must not be reported at this line.
    path = append_to_body(project, '<p style="color:#1a1a1a !important">Dark text.</p>')
    found = [f for f in json_findings(project) if "css-important" in f["message"]]
    assert found == []
    # In a step's own <style>, it reaches the email: reported at its line, property named.
    append_to_body(
        project,
        "<style>\n@media (max-width: 480px) {\n  .note {\n    color: #000000 !important;\n"
        "  }\n}\n</style>",
    )
    (important,) = [f for f in json_findings(project) if "css-important" in f["message"]]
    assert important["file"] == str(path)
    assert important["line"] == line_of(path, "color: #000000 !important")
    assert important["message"].startswith("!important on color:")
