"""Reading subscriber CSVs: line numbers that match the file, attributes, whole-file errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dripline.store import SubscriberCsvError, read_subscriber_csv

LA = ZoneInfo("America/Los_Angeles")


def read(tmp_path: Path, content: str | bytes):
    path = tmp_path / "people.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return read_subscriber_csv(path, LA)


def test_line_numbers_count_physical_lines_including_quoted_newlines(tmp_path: Path):
    result = read(
        tmp_path,
        "email,name,note\n"
        'a@example.com,"Ann\nMultiline",x\n'  # lines 2-3
        "\n"  # line 4: blank, ignored
        "broken,Bob,y\n"  # line 5
        "c@example.com,Cy,z,extra\n",  # line 6: more values than columns
    )
    assert [(p.line, p.message.split(" (")[0]) for p in result.problems] == [
        (2, "column 'name': a name must be one line"),
        (5, "not an email address: 'broken'"),
        (6, "4 values but the header has 3 columns"),
    ]


def test_attributes_first_name_and_local_dates(tmp_path: Path):
    result = read(
        tmp_path,
        "\ufeffEmail , Name,First_Name,timezone,subscribed_at,Plan\n"
        "a@example.com,Ann Lee,Annie,,2026-03-05 20:00,gold\n"
        "b@example.com,Bob,,Asia/Kolkata,2026-03-05T20:00Z,\n",
    )
    ann, bob = result.people
    assert (ann.first_name, ann.timezone, ann.attributes) == ("Annie", None, {"plan": "gold"})
    # No zone on the row: the naive date is in the campaign default zone (LA here).
    assert ann.subscribed_at == datetime(2026, 3, 5, 20, 0, tzinfo=LA).astimezone(UTC)
    assert bob.subscribed_at == datetime(2026, 3, 5, 20, 0, tzinfo=UTC)
    assert bob.attributes == {"plan": ""}


def test_duplicate_addresses_keep_the_first_row(tmp_path: Path):
    result = read(tmp_path, "email,name\na@example.com,First\nA@EXAMPLE.com,Second\n")
    assert [p.name for p in result.people] == ["First"]
    assert result.duplicates == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("mail,name\nx@example.com,X\n", "no 'email' column"),
    ],
)
def test_whole_file_problems_name_the_file(tmp_path: Path, content, message):
    with pytest.raises(SubscriberCsvError, match=message) as caught:
        read(tmp_path, content)
    assert str(caught.value).startswith(str(tmp_path / "people.csv"))


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SubscriberCsvError, match="cannot read"):
        read_subscriber_csv(tmp_path / "nope.csv", LA)


def test_values_the_renderer_would_refuse_are_refused_at_import_with_line_and_column(
    tmp_path: Path,
):
    result = read(
        tmp_path,
        "email,name,first_name,plan\n"
        "zoë@example.com,Zoë,,x\n"  # line 2: non-ASCII local part
        "esc@example.com,Ann\x1b[31m,,x\n"  # line 3: ESC in a name
        "del@example.com,Bob,B\x7fob,x\n"  # line 4: DEL in a first name
        'nul@example.com,Cy,,"a\x00b"\n'  # line 5: NUL in a custom column
        "enc@example.com,Di,,=?utf-8?q?x?=\n"  # line 6: an encoded-word marker
        "ok@example.com,Eve,,gold\n",
    )
    assert [(p.line, p.message.split(":")[0]) for p in result.problems] == [
        (2, "cannot send to 'zoë@example.com'"),
        (3, "column 'name' holds a line break or control character (U+001B)"),
        (4, "column 'first_name' holds a line break or control character (U+007F)"),
        (5, "column 'plan' holds a line break or control character (U+0000)"),
        (6, "column 'plan' holds an encoded-word marker '=?'"),
    ]
    assert "SMTPUTF8" in result.problems[0].message
    assert [str(p.email) for p in result.people] == ["ok@example.com"]


def test_invisible_characters_a_subject_refuses_are_refused_at_import(tmp_path: Path):
    # Issue 12: subjects refuse C1 controls, zero-width spaces, bidi overrides and U+FFFD,
    # so a value holding one would fail every send of a step that puts it in the subject.
    result = read(
        tmp_path,
        "email,name,first_name,plan\n"
        "c1@example.com,You\x92re,,x\n"
        "zw@example.com,Ana\u200b,,x\n"
        "bidi@example.com,Bo,,\u202egold\n"
        "ok@example.com,Eve,,gold\n",
    )
    assert [(p.line, p.message.split(" (")[0]) for p in result.problems] == [
        (2, "column 'name' holds U+0092"),
        (3, "column 'name' holds U+200B ZERO WIDTH SPACE"),
        (4, "column 'plan' holds U+202E RIGHT-TO-LEFT OVERRIDE"),
    ]
    assert [str(p.email) for p in result.people] == ["ok@example.com"]
