"""Turning a subscriber CSV file into records, the way spreadsheets really write them.

Excel (Windows and Mac), Google Sheets, LibreOffice and Numbers differ in the
byte-order mark, line ends (CRLF, LF, CR), the separator (``;`` where the decimal
mark is a comma, tab for "Unicode Text") and the text encoding. Here:

- the encoding is UTF-8 with or without a BOM, or UTF-16 with a BOM (Excel's
  "Unicode Text"); a byte that is not UTF-8 makes only its record a problem, at
  the line it is on;
- the separator is ``,``, ``;`` or tab, found by :class:`csv.Sniffer` and checked
  against the header (the one that yields an ``email`` column wins);
- a quote that is never closed is reported at the line it opens on, and the
  lines after it are read again as rows instead of being swallowed into it;
- a field of any size is read (the csv module's 128 KiB limit is lifted), so an
  oversized value is one row's problem, not the whole file's.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = [
    "SEPARATOR_NAMES",
    "Record",
    "choose_separator",
    "decode_csv",
    "records",
    "split_lines",
]

SEPARATORS = (",", ";", "\t")
SEPARATOR_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+\Z")
_SNIFF_BYTES = 64 * 1024
_FIELD_LIMIT = 2**31 - 1  # the largest a C long takes everywhere


@dataclass(frozen=True)
class Record:
    """One CSV record: its first physical line, its values, or why it cannot be read."""

    line: int
    values: list[str]
    problem: str | None = None


def decode_csv(data: bytes) -> str:
    """Text with undecodable bytes kept as lone surrogates (U+DC80..U+DCFF), to be
    reported at their own line by whoever reads the record."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="surrogateescape").removeprefix("\ufeff")
    return data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")


def split_lines(text: str) -> list[str]:
    """Physical lines as a text editor counts them (CRLF, LF or CR), ends kept."""
    return _LINE.findall(text)


def _header_fields(line: str, separator: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=separator), [])
    except csv.Error:
        return []


def choose_separator(text: str, header_line: str, has_email: Callable[[list[str]], bool]) -> str:
    """``csv.Sniffer``'s guess among ``,`` ``;`` tab, unless another one is the only
    one that makes the header hold an email column."""
    try:
        guess = csv.Sniffer().sniff(text[:_SNIFF_BYTES], delimiters="".join(SEPARATORS))
        separator = guess.delimiter
    except csv.Error:  # one column, or too little text to tell
        separator = max(SEPARATORS, key=header_line.count)
    if has_email(_header_fields(header_line, separator)):
        return separator
    for other in SEPARATORS:
        if has_email(_header_fields(header_line, other)):
            return other
    return separator


def records(lines: list[str], separator: str, start: int = 0) -> Iterator[Record]:
    """Records from ``lines[start:]``; line numbers are 1-based physical lines.

    The reader is strict about quotes, so a malformed record is an error here; it is
    reported and reading starts again on the line after the one it began on.
    """
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)  # sizes are checked per value, per row
    while start < len(lines):
        reader = csv.reader(iter(lines[start:]), delimiter=separator, strict=True)
        first = start + 1  # the physical line the next record starts on
        try:
            for values in reader:
                yield Record(first, values)
                first = start + reader.line_num + 1
            return
        except csv.Error as err:
            if "end of data" in str(err) or reader.line_num + start >= len(lines):
                problem = 'a quote (") opened on this line is never closed'
            else:
                problem = f"malformed quoting ({err}); quote a value that holds {separator!r}"
            yield Record(first, [], problem)
            start = first  # the next physical line: rows after a bad quote still count
