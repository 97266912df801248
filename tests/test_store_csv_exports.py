"""Subscriber CSVs as spreadsheets write them, and the damage real files carry.

Each export is built byte for byte the way the application writes it: byte-order
mark or not, CRLF / LF / CR line ends, ``,`` ``;`` or tab, UTF-8 or UTF-16,
quoting style, and the header wording its users type.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dripline.store import SubscriberCsvError, read_subscriber_csv

LA = ZoneInfo("America/Los_Angeles")
BOM = "\ufeff"


def export(rows: list[list[str]], *, sep: str, newline: str, quote_all: bool = False) -> str:
    def cell(value: str) -> str:
        if quote_all or any(c in value for c in (sep, '"', "\n", "\r")):
            return '"' + value.replace('"', '""') + '"'
        return value

    return "".join(sep.join(cell(v) for v in row) + newline for row in rows)


PEOPLE = [
    ["ada@example.com", "Ada", "Lovelace", "Europe/London"],
    ["chidi@example.com", "Chidi", "Okafor, Jr.", "Africa/Lagos"],
    ["zoe@example.com", "Zoë", "Müller", "Europe/Berlin"],
]
EXPORTS = {
    # Excel for Windows, "CSV UTF-8 (Comma delimited)": BOM, CRLF.
    "excel-windows": (
        BOM
        + export(
            [["Email", "First Name", "Last Name", "Time Zone"], *PEOPLE], sep=",", newline="\r\n"
        )
    ).encode("utf-8"),
    # Excel for Windows with a German locale: the list separator is ';'.
    "excel-windows-de": (
        BOM
        + export([["E-Mail", "Vorname", "Nachname", "Zeitzone"], *PEOPLE], sep=";", newline="\r\n")
    ).encode("utf-8"),
    # Excel for Mac, "CSV UTF-8": BOM, LF.
    "excel-mac": (
        BOM
        + export(
            [["E-mail", "First name", "Last name", "Timezone"], *PEOPLE], sep=",", newline="\n"
        )
    ).encode("utf-8"),
    # Excel for Mac 2011 "Comma Separated Values": classic Mac CR line ends.
    "excel-mac-2011": export(
        [["Email Address", "First_Name", "Last_Name", "TZ"], *PEOPLE], sep=",", newline="\r"
    ).encode("utf-8"),
    # Excel "Unicode Text": UTF-16 little-endian with a BOM, tab-separated, CRLF.
    "excel-unicode-text": (
        BOM
        + export(
            [["email", "first name", "last name", "time zone"], *PEOPLE], sep="\t", newline="\r\n"
        )
    ).encode("utf-16-le"),
    # Google Sheets, File > Download > CSV: no BOM, CRLF, quoted only when needed.
    "google-sheets": export(
        [["Email", "First Name", "Last Name", "Time zone"], *PEOPLE], sep=",", newline="\r\n"
    ).encode("utf-8"),
    # LibreOffice Calc with "Quote all text cells": no BOM, LF.
    "libreoffice": export(
        [["email", "first_name", "last_name", "timezone"], *PEOPLE],
        sep=",",
        newline="\n",
        quote_all=True,
    ).encode("utf-8"),
    # Numbers with a European region: ';', LF, no BOM.
    "numbers": export(
        [["Email", "Given Name", "Family Name", "Time Zone"], *PEOPLE], sep=";", newline="\n"
    ).encode("utf-8"),
}


def read(tmp_path: Path, data: bytes | str):
    path = tmp_path / "people.csv"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return read_subscriber_csv(path, LA)


@pytest.mark.parametrize("app", sorted(EXPORTS))
def test_spreadsheet_exports_are_read_with_their_fields(tmp_path: Path, app: str) -> None:
    result = read(tmp_path, EXPORTS[app])
    assert result.problems == []
    got = [(str(p.email), p.first_name, p.name, p.timezone) for p in result.people]
    assert got == [
        ("ada@example.com", "Ada", "Ada Lovelace", "Europe/London"),
        ("chidi@example.com", "Chidi", "Chidi Okafor, Jr.", "Africa/Lagos"),
        ("zoe@example.com", "Zoë", "Zoë Müller", "Europe/Berlin"),
    ]
    assert result.separator == {"excel-windows-de": ";", "numbers": ";"}.get(
        app, "\t" if app == "excel-unicode-text" else ","
    )


def test_quoted_newlines_keep_line_numbers_and_a_multiline_value_is_its_rows_problem(
    tmp_path: Path,
) -> None:
    data = export(
        [
            ["Email", "Name", "Notes"],
            ["a@example.com", "Ann", "met at\r\nthe fair"],  # lines 2-3
            ["b@example.com", "Bob", "ok"],  # line 4
            ["broken", "Cy", "x"],  # line 5
        ],
        sep=",",
        newline="\r\n",
    )
    result = read(tmp_path, data)
    assert [(p.line, p.message) for p in result.problems] == [
        (2, "column 'notes' holds a line break or control character (U+000D)"),
        (5, result.problems[1].message),
    ]
    assert result.problems[1].message.startswith("not an email address: 'broken'")
    assert [str(p.email) for p in result.people] == ["b@example.com"]


def test_one_oversized_field_rejects_only_its_row(tmp_path: Path) -> None:
    huge = "x" * 200_000
    result = read(
        tmp_path,
        f"email,name,bio\na@example.com,Ann,short\nb@example.com,Bob,{huge}\nc@example.com,Cy,\n",
    )
    assert [(p.line, p.message) for p in result.problems] == [
        (3, "column 'bio' is limited to 10,000 characters (it has 200,000)")
    ]
    assert [str(p.email) for p in result.people] == ["a@example.com", "c@example.com"]


def test_a_byte_that_is_not_utf8_is_reported_at_its_own_line(tmp_path: Path) -> None:
    # A Windows-1252 "ö" in row 4 of an otherwise UTF-8 file.
    data = (
        b"email,name\r\na@example.com,Ann\r\nb@example.com,Zo\xc3\xab\r\nc@example.com,J\xf6rg\r\n"
    )
    result = read(tmp_path, data)
    assert [(p.line, p.message) for p in result.problems] == [
        (4, "column 'name': not UTF-8 text (byte 0xF6); save the file as CSV UTF-8")
    ]
    assert [p.name for p in result.people] == ["Ann", "Zoë"]


def test_an_unterminated_quote_is_reported_and_the_rows_after_it_are_read(
    tmp_path: Path,
) -> None:
    result = read(
        tmp_path,
        'email,name\na@example.com,"Ann\nb@example.com,Bob\nc@example.com,Cy\n',
    )
    assert [(p.line, p.message) for p in result.problems] == [
        (2, 'a quote (") opened on this line is never closed')
    ]
    assert [str(p.email) for p in result.people] == ["b@example.com", "c@example.com"]


def test_a_stray_quote_is_its_rows_problem(tmp_path: Path) -> None:
    result = read(tmp_path, 'email,name\na@example.com,"Ann" Lee\nb@example.com,Bob\n')
    assert [p.line for p in result.problems] == [2]
    assert "malformed quoting" in result.problems[0].message
    assert [str(p.email) for p in result.people] == ["b@example.com"]


def test_a_semicolon_file_with_commas_in_names_is_read_as_semicolon_separated(
    tmp_path: Path,
) -> None:
    result = read(tmp_path, "email;name;tz\na@example.com;Okafor, Chidi;Europe/Paris\n")
    (person,) = result.people
    assert (person.name, person.first_name, person.timezone) == (
        "Okafor, Chidi",
        "Chidi",
        "Europe/Paris",
    )


def test_without_an_email_column_the_message_shows_the_columns_found(tmp_path: Path) -> None:
    with pytest.raises(SubscriberCsvError, match="no 'email' column") as caught:
        read(tmp_path, "mail;name\nx@example.com;X\n")
    assert "found 'mail', 'name'" in str(caught.value)  # split at ';', as it looks


def test_a_time_zone_column_is_the_subscribers_zone_not_an_attribute(tmp_path: Path) -> None:
    result = read(tmp_path, "Email,Time Zone\na@example.com,Asia/Kolkata\n")
    (person,) = result.people
    assert (person.timezone, person.attributes) == ("Asia/Kolkata", {})
