"""Reading a subscriber CSV: every row checked, bad ones reported by line, good ones kept.

Columns ``email``, ``name``, ``first_name``, ``last_name``, ``timezone``,
``country`` and ``subscribed_at`` are the subscriber's fields (only ``email`` is
required); headers match loosely (``E-mail``, ``First Name``, ``Time Zone``,
``tz``...), and no two columns may hold the same field. Any other column becomes
an attribute, available to templates as ``subscriber.<column>`` (by the rule of
:mod:`._attribute_names`: ``Seats (max)`` is ``subscriber.seats_max``; a header that
makes no readable name refuses the file, naming the column). An Excel ``sep=;``
first line names the separator. ``country`` (ISO 3166-1 alpha-2) is stored as an attribute
too; ``holidays = "subscriber"`` reads it.

Every value is checked with the rules the renderer applies (see
:mod:`._values`), so a row accepted here cannot fail at send time for its data.
How the file itself is read (encodings, separators, quotes): :mod:`._csv_text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from ..errors import DriplineError
from ._attribute_names import attribute_key, attribute_name_problem
from ._csv_text import (
    SEPARATOR_NAMES,
    choose_separator,
    decode_csv,
    encoding_of,
    records,
    split_lines,
)
from ._enroll import NewSubscriber
from ._values import (
    check_country,
    check_name,
    check_value,
    check_zone,
    derive_first_name,
    normalize_email,
    parse_moment,
    zone_warning,
)

__all__ = [
    "CsvReadResult",
    "RowProblem",
    "SubscriberCsvError",
    "attribute_key",
    "field_of",
    "read_subscriber_csv",
]

# Header spellings people's exports use, squashed (lower case, no spaces, - _ or .).
_ALIASES = {
    "email": {"email", "emailaddress", "emailadresse", "correo", "courriel"},
    "name": {"name", "fullname", "displayname"},
    "first_name": {"firstname", "givenname", "forename", "vorname", "prenom", "prénom"},
    "last_name": {"lastname", "surname", "familyname", "nachname"},
    "timezone": {"timezone", "tz", "zone", "tzname", "ianatimezone", "zeitzone", "fuseau"},
    "country": {"country", "countrycode", "land", "pays"},
    "subscribed_at": {"subscribedat", "subscribed", "subscriptiondate", "signedupat", "optinat"},
}
_FIELD_OF = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}
_SQUASH = re.compile(r"[\s\-_.]+")
_SEP_LINE = re.compile(r'"?sep=([^"\r\n]|\\t)"?[\r\n]*\Z', re.IGNORECASE)
_HEADER_SHOWN = 40  # characters of each header cell quoted in a message


class SubscriberCsvError(DriplineError):
    """The CSV as a whole cannot be read (missing file, empty, no email column)."""


@dataclass(frozen=True)
class RowProblem:
    line: int
    message: str


@dataclass
class CsvReadResult:
    people: list[NewSubscriber] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)  # imported, but worth a word
    duplicates: int = 0  # repeats of an address earlier in the file (the first one wins)
    separator: str = ","
    line_of: dict[str, int] = field(default_factory=dict)  # address key -> its row's line


def field_of(header: str) -> str | None:
    """The standard field a header (or ``key`` of ``key=value``) names, loosely matched."""
    return _FIELD_OF.get(_SQUASH.sub("", header.strip().lower()))


_field_of = field_of


def _has_email(header: list[str]) -> bool:
    return any(_field_of(h) == "email" for h in header)


def _columns(header: list[str]) -> list[str]:
    """The key each header cell stores its values under: a field name or an attribute.

    Raises :class:`ValueError` for a header no attribute name can be made of (see
    :mod:`._attribute_names`), and when two columns would store under the same key
    ("Time Zone" and "timezone", "E-mail" and "Email", "notes" twice): which one the
    file means cannot be told, and taking either would lose the other in silence.
    """
    columns: list[str] = []
    where: dict[str, int] = {}
    for index, cell in enumerate(header):
        key = _field_of(cell) or attribute_key(cell)
        if cell.strip() and not _field_of(cell) and (problem := attribute_name_problem(key)):
            raise ValueError(
                f"column {index + 1} ({cell.strip()[:_HEADER_SHOWN]!r}) {problem}; rename "
                "the column (or remove it)"
            )
        if key and key in where:
            first = where[key]
            what = f"the {key!r} field" if _field_of(cell) else f"{key!r}"
            raise ValueError(
                f"columns {first + 1} ({header[first].strip()!r}) and {index + 1} "
                f"({cell.strip()!r}) both hold {what}; remove or rename one"
            )
        where[key] = index
        columns.append(key)
    return columns


def _header_problem(values: list[str], encoding: str) -> str | None:
    """Why a header row is no spreadsheet's: binary data, or bytes that are not text
    (column names with those can be neither matched nor stored as attribute names)."""
    if any(ord(c) < 32 and c not in "\t\r\n" for value in values for c in value):
        return (
            "this is not a CSV text file (its first line holds binary data, as an Excel "
            ".xlsx workbook does); save the sheet as CSV UTF-8"
        )
    for number, cell in enumerate(values, 1):
        bad = next((c for c in cell if "\udc00" <= c <= "\udcff"), None)
        if bad is not None:
            shown = "".join("?" if "\udc00" <= c <= "\udcff" else c for c in _shorten(cell))
            return (
                f"the header row is not {encoding} text (byte 0x{ord(bad) - 0xDC00:02X} in "
                f"column {number}, {shown!r}); save the file as CSV UTF-8"
            )
    return None


def _shorten(cell: str) -> str:
    return cell if len(cell) <= _HEADER_SHOWN else cell[:_HEADER_SHOWN] + "..."


def _undecodable(values: list[str], columns: list[str], encoding: str) -> str | None:
    for index, value in enumerate(values):
        for char in value:
            if "\udc00" <= char <= "\udcff":  # a byte kept by decode_csv
                column = columns[index] if index < len(columns) else f"#{index + 1}"
                return (
                    f"column {column!r}: not {encoding} text (byte 0x{ord(char) - 0xDC00:02X}); "
                    "save the file as CSV UTF-8"
                )
    return None


def _person(row: dict[str, str], default_zone: ZoneInfo) -> NewSubscriber:
    email = normalize_email(row.get("email") or "")
    zone_name = check_zone(row.get("timezone"))
    zone = ZoneInfo(zone_name) if zone_name else default_zone
    raw_at = (row.get("subscribed_at") or "").strip()
    first_name = check_name(row.get("first_name") or "", "first_name")
    last_name = check_name(row.get("last_name") or "", "last_name")
    name = check_name(row.get("name") or "")
    if not name and (first_name or last_name):
        name = " ".join(part for part in (first_name, last_name) if part)
    attributes: dict[str, str] = {}
    for key, value in row.items():
        if key and key not in {"email", "name", "first_name", "timezone", "subscribed_at"}:
            attributes[key] = check_value(value, key)
    if "country" in attributes:
        country = check_country(attributes["country"])
        if country:
            attributes["country"] = country
        else:
            del attributes["country"]
    derived = {"name"} if name and not row.get("name", "").strip() else set()
    derived |= {"first_name"} if name and not first_name else set()
    return NewSubscriber(
        email=email,
        name=name,
        first_name=first_name or derive_first_name(name),
        timezone=zone_name,
        subscribed_at=parse_moment(raw_at, zone) if raw_at else None,
        attributes=attributes,
        derived=frozenset(derived),
    )


def _read_lines(path: Path) -> tuple[list[str], str, str]:
    """The file's physical lines, a sample for the sniffer, and its encoding's name."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SubscriberCsvError(f"cannot read: {err.strerror}", path=path) from err
    lines = split_lines(decode_csv(data))
    return lines, "".join(lines[:200]), encoding_of(data)


def read_subscriber_csv(path: Path, default_zone: ZoneInfo) -> CsvReadResult:
    """Check every row of ``path``; naive ``subscribed_at`` values are local to the row's zone.

    Raises :class:`SubscriberCsvError` when the file cannot be read at all (missing,
    empty, no email column); a bad row is a :class:`RowProblem` and the rest is read.
    """
    lines, sample, encoding = _read_lines(path)
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise SubscriberCsvError("the file is empty (expected a header row)", path=path)
    hinted = _SEP_LINE.match(lines[first])
    if hinted:
        # Excel's "sep=;" first line names the separator; the header is the next line.
        separator = "\t" if hinted.group(1) == "\\t" else hinted.group(1)
        first = next((i for i in range(first + 1, len(lines)) if lines[i].strip()), None)
        if first is None:
            raise SubscriberCsvError("the file has no header row after its sep= line", path=path)
    else:
        separator = choose_separator(sample, lines[first], _has_email)
    result = CsvReadResult(separator=separator)
    rows = records(lines, separator, first)
    header = next(rows)
    if header.problem is not None:
        raise SubscriberCsvError(header.problem, path=path, line=header.line)
    problem = _header_problem(header.values, encoding)
    if problem is not None:
        raise SubscriberCsvError(problem, path=path, line=header.line)
    if not _has_email(header.values):
        hints = [
            f"the file looks {SEPARATOR_NAMES[other]}-separated ({other!r})"
            for other in (";", "\t", ",")
            if other != separator and lines[first].count(other) >= 1
        ]
        found = ", ".join(repr(_shorten(h)) for h in header.values[:8])
        raise SubscriberCsvError(
            "no 'email' column in the header row (columns: email, name, first_name, "
            f"timezone, country, subscribed_at, and any attributes; found {found})"
            + (f"; {hints[0]}" if hints else ""),
            path=path,
            line=header.line,
        )
    try:
        columns = _columns(header.values)
    except ValueError as err:
        raise SubscriberCsvError(str(err), path=path, line=header.line) from err
    seen: set[str] = set()
    warned_zones: set[str] = set()
    for record in rows:
        if record.problem is not None:
            result.problems.append(RowProblem(record.line, record.problem))
            continue
        values = record.values
        if not any(v.strip() for v in values):
            continue
        problem = _undecodable(values, columns, encoding)
        if problem is None and len(values) > len(columns):
            problem = f"{len(values)} values but the header has {len(columns)} columns"
        if problem is not None:
            result.problems.append(RowProblem(record.line, problem))
            continue
        try:
            person = _person(dict(zip(columns, values, strict=False)), default_zone)
        except DriplineError as err:
            result.problems.append(RowProblem(record.line, err.message))
            continue
        warning = zone_warning(person.timezone)
        if warning and person.timezone not in warned_zones:
            warned_zones.add(person.timezone or "")
            result.warnings.append(RowProblem(record.line, warning + " (first of its rows)"))
        if person.email.key in seen:
            result.duplicates += 1
            continue
        seen.add(person.email.key)
        result.line_of[person.email.key] = record.line
        result.people.append(person)
    return result
