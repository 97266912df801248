"""Reading a subscriber CSV: every row checked, bad ones reported by line, good ones kept.

Columns ``email``, ``name``, ``first_name``, ``timezone`` and ``subscribed_at`` are
the subscriber's fields (only ``email`` is required); any other column becomes
an attribute, available to templates as ``subscriber.<column>``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from ..errors import DriplineError
from ._enroll import NewSubscriber
from ._values import check_name, check_zone, normalize_email, parse_moment

__all__ = ["CsvReadResult", "RowProblem", "SubscriberCsvError", "read_subscriber_csv"]

_FIELDS = {"email", "name", "first_name", "timezone", "subscribed_at"}


class SubscriberCsvError(DriplineError):
    """The CSV as a whole cannot be read (missing file, no email column, not UTF-8)."""


@dataclass(frozen=True)
class RowProblem:
    line: int
    message: str


@dataclass
class CsvReadResult:
    people: list[NewSubscriber] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    duplicates: int = 0  # repeats of an address earlier in the file (the first one wins)
    line_of: dict[str, int] = field(default_factory=dict)  # address key -> its row's line


def _records(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(first line of the record, row) pairs; header names are trimmed and lower-cased."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as err:
        raise SubscriberCsvError(f"cannot read: {err.strerror}", path=path) from err
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise SubscriberCsvError("the file is empty (expected a header row)", path=path)
            columns = [h.strip().lower() for h in header]
            if "email" not in columns:
                raise SubscriberCsvError(
                    "no 'email' column in the header row (columns: email, name, timezone, "
                    "subscribed_at, and any attributes)",
                    path=path,
                    line=1,
                )
            line = reader.line_num + 1
            for values in reader:
                if any(v.strip() for v in values):
                    if len(values) > len(columns):
                        yield line, {"\0extra": str(len(values))}
                    else:
                        yield line, dict(zip(columns, values, strict=False))
                line = reader.line_num + 1
        except UnicodeDecodeError as err:
            raise SubscriberCsvError(
                "not UTF-8 text; save the CSV as UTF-8", path=path, line=reader.line_num + 1
            ) from err
        except csv.Error as err:
            raise SubscriberCsvError(f"broken CSV: {err}", path=path, line=reader.line_num) from err


def _person(row: dict[str, str], default_zone: ZoneInfo) -> NewSubscriber:
    if "\0extra" in row:
        count = row["\0extra"]
        raise DriplineError(f"{count} values but the header has fewer columns")
    email = normalize_email(row.get("email") or "")
    zone_name = check_zone(row.get("timezone"))
    zone = ZoneInfo(zone_name) if zone_name else default_zone
    raw_at = (row.get("subscribed_at") or "").strip()
    name = check_name(row.get("name") or "")
    return NewSubscriber(
        email=email,
        name=name,
        first_name=check_name(row.get("first_name") or ""),
        timezone=zone_name,
        subscribed_at=parse_moment(raw_at, zone) if raw_at else None,
        attributes={k: v for k, v in row.items() if k and k not in _FIELDS},
    )


def read_subscriber_csv(path: Path, default_zone: ZoneInfo) -> CsvReadResult:
    """Check every row of ``path``; naive ``subscribed_at`` values are local to the row's zone."""
    result = CsvReadResult()
    seen: dict[str, int] = {}
    for line, row in _records(path):
        try:
            person = _person(row, default_zone)
        except DriplineError as err:
            result.problems.append(RowProblem(line, err.message))
            continue
        if person.email.key in seen:
            result.duplicates += 1
            continue
        seen[person.email.key] = line
        result.people.append(person)
    result.line_of = seen
    return result
