"""`dripline check` lints what subscribers will get."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from dripline.cli import main

STEP = "campaigns/ketamine-therapy/03-neuroplasticity.md"


def check(project: Path):
    result = CliRunner().invoke(main, ["--root", str(project), "check", "ketamine-therapy"])
    assert "Traceback" not in result.output
    return result


def append_to_body(project: Path, markdown: str) -> Path:
    path = project / STEP
    path.write_text(path.read_text() + "\n" + markdown + "\n")
    return path


def line_of(path: Path, needle: str) -> int:
    text = path.read_text()
    return text[: text.index(needle)].count("\n") + 1


def test_image_without_alt_text_is_a_warning(project):
    path = append_to_body(project, '<img src="https://example.com/brain.png">')
    result = check(project)
    assert result.exit_code == 0
    expected = (
        f"{path}:{line_of(path, 'brain.png')}: warning: image 'https://example.com/brain.png'"
    )
    assert expected in result.output


def test_links_must_be_http_or_mailto(project):
    path = append_to_body(project, "[click](javascript:alert(1)) and [file](ftp://example.com/x)")
    result = check(project)
    assert result.exit_code == 1
    assert "link 'ftp://example.com/x' is not an http(s) or mailto link" in result.output
    assert f"{path}:{line_of(path, 'ftp://')}:" in result.output


def test_unknown_variable_is_an_error(project):
    path = append_to_body(project, "Your code: {{ coupon }}")
    result = check(project)
    assert result.exit_code == 1
    assert f"{path}:{line_of(path, 'coupon')}: error: unknown variable 'coupon'" in result.output


def test_missing_subscriber_field_is_an_error_for_samples_without_it(project):
    path = append_to_body(project, "Your plan: {{ subscriber.plan }}")
    result = check(project)
    assert result.exit_code == 1
    assert "subscriber.plan is not a standard field" in result.output
    assert f"{path}:{line_of(path, 'subscriber.plan')}: error: for sample" in result.output
    assert "plan" in result.output


def test_field_with_default_is_fine(project):
    append_to_body(project, 'Your plan: {{ subscriber.plan | default("basic") }}')
    (project / "campaigns/ketamine-therapy/preview.toml").write_text(
        '[[subscriber]]\nemail = "a@example.com"\nplan = "pro"\n'
    )
    result = check(project)
    assert result.exit_code == 0, result.output
    assert "subscriber.plan" not in result.output


def test_html_over_102_kb_is_an_error(project):
    append_to_body(project, "\n\n".join(f"Paragraph {i} " + "padding " * 40 for i in range(400)))
    result = check(project)
    assert result.exit_code == 1
    assert "Gmail clips messages over 102 KB" in result.output


def test_layout_without_unsubscribe_or_address_is_an_error(project):
    layout = project / "templates" / "base.html"
    text = layout.read_text()
    text = text.replace('<a href="{{ unsubscribe_url }}">Unsubscribe</a>', "")
    text = text.replace("{{ campaign.postal_address }}", "")
    layout.write_text(text)
    result = check(project)
    assert result.exit_code == 1
    assert "no unsubscribe link in the HTML or text part" in result.output
    assert "the postal address is missing" in result.output


def test_missing_preheader_is_a_warning(project):
    path = project / STEP
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("preheader")]
    path.write_text("\n".join(lines) + "\n")
    result = check(project)
    assert result.exit_code == 0
    assert f"{path}:2: warning: no preheader" in result.output


# -- issue 12: invisible characters, encoded-word markers, Gmail's clipping size ----------


def set_front_matter(path: Path, key: str, value: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines = [f"{key} = {value}" if ln.startswith(f"{key} =") else ln for ln in lines]
    path.write_text("\n".join(lines), encoding="utf-8")


def test_c1_control_and_bidi_override_in_the_body_are_errors_with_their_line(project):
    path = append_to_body(project, "You\u0092re welcome.\n\nPrice: \u202e05$\u202c today.")
    result = check(project)
    assert result.exit_code == 1
    assert f"{path}:{line_of(path, 'You')}: error: body holds U+0092" in result.output
    assert f"{path}:{line_of(path, 'Price')}: error: body holds U+202E" in result.output


def test_zero_width_space_and_replacement_character_are_reported(project):
    path = append_to_body(project, "Hello\u200bthere.\n\nCaf\ufffd open &#8203;late.")
    result = check(project)
    assert result.exit_code == 1  # U+FFFD is an error, the zero-width space a warning
    assert f"{path}:{line_of(path, 'Hello')}: warning: body holds U+200B" in result.output
    assert f"{path}:{line_of(path, 'Caf')}: error: body holds U+FFFD" in result.output
    assert f"{path}:{line_of(path, 'Caf')}: warning: body holds U+200B" in result.output


def test_c1_control_in_the_preheader_is_an_error_even_as_a_toml_escape(project):
    path = project / STEP
    set_front_matter(path, "preheader", '"Don\\u0092t miss it"')
    result = check(project)
    assert result.exit_code == 1
    assert f"{path}:{line_of(path, 'preheader =')}: error: preheader holds U+0092" in result.output


def test_c1_control_in_the_subject_is_refused_at_the_subject_line(project):
    path = project / STEP
    set_front_matter(path, "subject", '"You\\u0092re invited"')
    result = check(project)
    assert result.exit_code == 1
    line = line_of(path, "subject =")
    assert f"{path}:{line}: error: cannot render: Subject holds U+0092" in result.output
    assert "unknown or missing variable" not in result.output


def test_subject_with_an_encoded_word_marker_passes(project):
    set_front_matter(project / STEP, "subject", '"Quiz: 7 × 6 =? Answer inside"')
    result = check(project)
    assert result.exit_code == 0, result.output
    assert "encoded-word" not in result.output and ": error:" not in result.output


def test_gmail_clipping_is_measured_on_the_html_part_as_sent(project):
    # About 40 KB of decoded text that quoted-printable triples: fine decoded, clipped as sent.
    append_to_body(project, "\n\n".join("é" * 1000 for _ in range(20)))
    result = check(project)
    assert result.exit_code == 1
    found = re.search(
        r"error: HTML part is ([\d.]+) KB as sent \(quoted-printable\); Gmail", result.output
    )
    assert found and float(found.group(1)) > 102


def test_html_part_nearing_the_clipping_size_is_a_warning(project):
    append_to_body(project, "\n\n".join("é" * 1000 for _ in range(15)))
    result = check(project)
    assert result.exit_code == 0, result.output
    found = re.search(r"warning: HTML part is ([\d.]+) KB as sent", result.output)
    assert found and 90 <= float(found.group(1)) <= 102


def test_sender_name_no_header_can_carry_is_one_campaign_error(project):
    toml = project / "campaigns/ketamine-therapy/campaign.toml"
    toml.write_text(toml.read_text().replace("Clearwater Mind Clinic", "Clearwater\\u0092s"))
    result = check(project)
    assert result.exit_code == 1
    assert result.output.count(f"{toml}: error: From holds U+0092") == 1


def test_a_runtime_error_in_the_body_points_at_its_line_not_the_end(project):
    """A template fault that only data triggers (here text minus a number) is reported at
    the line that holds it, though Markdown (a list, a heading) moved the lines around."""
    path = project / STEP
    text = path.read_text()
    head, _, rest = text.partition("\n\n")
    faulty = "Days left: {{ subscriber.name | default(0) - 1 }}"
    path.write_text(f"{head}\n\n# Heading\n\n- one\n- two\n\n{faulty}\n\n{rest}")
    (project / "campaigns/ketamine-therapy/preview.toml").write_text(
        '[[subscriber]]\nemail = "a@example.com"\nname = "Ann Example"\n'
    )
    result = check(project)
    assert result.exit_code == 1
    expected = (
        f"{path}:{line_of(path, faulty)}: error: for sample 'a@example.com': cannot render: "
        "TypeError: unsupported operand type(s) for -: 'str' and 'int'"
    )
    assert expected in result.output, result.output


def test_a_runtime_error_in_the_layout_names_the_layout_file_and_line(project):
    layout = project / "templates/base.html"
    lines = layout.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "{{ campaign.postal_address }}" in line)
    lines.insert(at, "<p>{{ step.number - 'x' }}</p>")
    layout.write_text("\n".join(lines) + "\n")
    result = check(project)
    assert result.exit_code == 1
    assert (
        f"cannot render: {layout}:{at + 1}: TypeError: unsupported operand type(s) for -: "
        "'int' and 'str'" in result.output
    ), result.output


def test_a_runtime_error_in_the_preheader_points_at_its_key(project):
    path = project / STEP
    text = path.read_text()
    assert '\npreheader = "' in text
    path.write_text(text.replace('\npreheader = "', "\npreheader = \"{{ step.number - 'x' }} ", 1))
    result = check(project)
    assert result.exit_code == 1
    line = line_of(path, "preheader = ")
    assert re.search(
        rf"{re.escape(str(path))}:{line}: error: for sample '[^']+': cannot render: TypeError: "
        r"unsupported operand type\(s\) for -: 'int' and 'str'",
        result.output,
    ), result.output


def test_a_runtime_error_is_found_by_its_own_occurrence_and_inside_a_tag_over_lines(project):
    """The failing line's first tag also appears earlier in the file (the greeting), and
    a failing tag spans lines: each is reported at its own line."""
    path = project / STEP
    text = path.read_text()
    greeting = next(line for line in text.splitlines() if line.startswith("Hi {{"))
    tag = greeting[greeting.index("{{") : greeting.index("}}") + 2]
    head, _, rest = text.partition("\n\n")
    again = f"Thanks, {tag}: you have {{{{ subscriber.name | default(0) - 1 }}}} left."
    path.write_text(f"{head}\n\n- one\n- two\n\n{again}\n\n{rest}")
    samples = project / "campaigns/ketamine-therapy/preview.toml"
    samples.write_text('[[subscriber]]\nemail = "a@example.com"\nname = "Ann Example"\n')
    error = "error: for sample 'a@example.com': cannot render: TypeError"
    assert f"{path}:{line_of(path, again)}: {error}" in check(project).output

    spanning = "Left: {{\n  subscriber.name\n  | default(0) - 2 }} days."
    path.write_text(f"{head}\n\n- one\n- two\n\n{spanning}\n\n{rest}")
    assert f"{path}:{line_of(path, '  subscriber.name')}: {error}" in check(project).output


def test_a_step_or_layout_whose_compile_runs_away_is_an_error_at_its_line(project, monkeypatch):
    monkeypatch.setenv("DRIPLINE_RENDER_BUDGET", "1")
    runaway = "{{ 'x' | slice(1000000000000) | sum(start=[]) }}"
    path = project / STEP
    text = path.read_text()
    line = next(line for line in text.splitlines() if line.startswith("subject = "))
    # A blank line above the key: the error is at the key's line, not the blank one.
    path.write_text(text.replace(line, f'\nsubject = "Reason {runaway}"', 1))
    result = check(project)
    assert f"{path}:{line_of(path, 'subject = ')}: error: compiling {path.name} took longer" in (
        result.output
    )
    path.write_text(text)
    layout = project / "templates/base.html"
    lines = layout.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "{{ campaign.postal_address }}" in line)
    lines.insert(at, f"<p>{runaway}</p>")
    layout.write_text("\n".join(lines) + "\n")
    result = check(project)
    assert result.exit_code == 1
    assert f"{layout}:{at + 1}: error: compiling the layout took longer than 1 s" in result.output
