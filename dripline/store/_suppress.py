"""The suppression list: addresses never enrolled or sent to again until removed.

Import (:func:`~dripline.store.enroll_many`), sign-up, ``subscribe`` and the
dispatcher's claim all consult it. An address is kept by its key (lower case,
punycode domain), so ``Ada@Example.com`` and ``ada@example.com`` are one entry.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, delete, insert, select

from ..errors import DriplineError
from ._bounce_models import Suppression
from ._csv_text import choose_separator, decode_csv, records, split_lines
from ._engine import read_transaction, write_transaction
from ._values import InvalidSubscriberError, from_db_time, normalize_email, to_db_time

__all__ = [
    "SuppressedError",
    "SuppressionEntry",
    "add_suppression",
    "export_suppressions",
    "import_suppressions",
    "list_suppressions",
    "remove_suppression",
    "suppressed_reasons",
    "suppression_for",
]

_P = Suppression.__table__
_MAX_REASON = 300
_SQUASH = re.compile(r"[\s\-_.]+")
_EMAIL_HEADERS = {"email", "emailaddress", "emailadresse", "correo", "courriel"}


class SuppressedError(InvalidSubscriberError):
    """The address is on the suppression list (the message says why and since when)."""


@dataclass(frozen=True)
class SuppressionEntry:
    email: str
    reason: str
    source: str
    created_at: datetime  # aware UTC
    event_id: int | None = None

    def describe(self) -> str:
        return f"suppressed since {self.created_at:%Y-%m-%d %H:%M} UTC: {self.reason}"

    def as_json(self) -> dict[str, object]:
        return {
            "email": self.email,
            "reason": self.reason,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "event_id": self.event_id,
        }


def _entry(row: object) -> SuppressionEntry:
    return SuppressionEntry(
        email=row.email,  # type: ignore[attr-defined]
        reason=row.reason,  # type: ignore[attr-defined]
        source=row.source,  # type: ignore[attr-defined]
        created_at=from_db_time(row.created_at),  # type: ignore[attr-defined,arg-type]
        event_id=row.event_id,  # type: ignore[attr-defined]
    )


def suppressed_reasons(conn: Connection, keys: Iterable[str]) -> dict[str, SuppressionEntry]:
    """The entries for those of ``keys`` (normalized address keys) that are suppressed."""
    wanted = sorted(set(keys))
    found: dict[str, SuppressionEntry] = {}
    for start in range(0, len(wanted), 500):  # bounded IN lists
        chunk = wanted[start : start + 500]
        for row in conn.execute(select(_P).where(_P.c.email_key.in_(chunk))):
            found[row.email_key] = _entry(row)
    return found


def suppression_for(engine: Engine, email: str) -> SuppressionEntry | None:
    key = normalize_email(email).key
    with read_transaction(engine) as conn:
        return suppressed_reasons(conn, [key]).get(key)


def suppress_in(
    conn: Connection,
    email: str,
    reason: str,
    *,
    source: str,
    now: datetime,
    event_id: int | None = None,
) -> bool:
    """Add ``email`` inside ``conn``'s transaction; False when it was already there."""
    normalized = normalize_email(email)
    if conn.scalar(select(_P.c.id).where(_P.c.email_key == normalized.key)) is not None:
        return False
    conn.execute(
        insert(_P).values(
            email_key=normalized.key,
            email=str(normalized),
            reason=reason[:_MAX_REASON],
            source=source[:100],
            created_at=to_db_time(now),
            event_id=event_id,
        )
    )
    return True


def add_suppression(
    engine: Engine, email: str, reason: str, *, source: str = "cli", now: datetime
) -> bool:
    """Suppress ``email`` (True) or leave an existing entry as it is (False).

    Raises :class:`~dripline.store.InvalidSubscriberError` for an invalid address.
    """
    with write_transaction(engine) as conn:
        return suppress_in(conn, email, reason, source=source, now=now)


def remove_suppression(engine: Engine, email: str) -> bool:
    """Take ``email`` off the list; False when it was not on it."""
    key = normalize_email(email).key
    with write_transaction(engine) as conn:
        return conn.execute(delete(_P).where(_P.c.email_key == key)).rowcount > 0


def list_suppressions(engine: Engine) -> list[SuppressionEntry]:
    with read_transaction(engine) as conn:
        return [_entry(r) for r in conn.execute(select(_P).order_by(_P.c.created_at, _P.c.id))]


def export_suppressions(engine: Engine) -> str:
    """The list as CSV text (``email,reason,source,created_at``), the format import reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "reason", "source", "created_at"])
    for entry in list_suppressions(engine):
        writer.writerow([entry.email, entry.reason, entry.source, entry.created_at.isoformat()])
    return out.getvalue()


@dataclass
class SuppressionImport:
    added: int = 0
    already: int = 0
    problems: list[tuple[int, str]] | None = None  # (line, message)


def _column(header: str) -> str:
    """``E-mail``, ``Email Address`` -> ``email``; other headers lower-cased."""
    squashed = _SQUASH.sub("", header.strip().lower())
    return "email" if squashed in _EMAIL_HEADERS else header.strip().lower()


def _has_email(header: list[str]) -> bool:
    return "email" in [_column(h) for h in header]


def import_suppressions(
    engine: Engine, path: Path, *, now: datetime, default_reason: str = "imported"
) -> SuppressionImport:
    """Add every address of a CSV with an ``email`` column (``reason`` optional).

    The file is read as subscriber CSVs are (:mod:`._csv_text`): UTF-8 with or without
    a BOM or UTF-16 ("Unicode Text"), separated by ``,``, ``;`` (Excel where the decimal
    mark is a comma) or tab. Bad rows are reported as (line, message) and skipped; valid
    rows are added in one transaction. Raises :class:`DriplineError` when the file cannot
    be read or has no email column.
    """
    result = SuppressionImport(problems=[])
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DriplineError(f"{path}: {err.strerror or err}") from err
    lines = split_lines(decode_csv(data))
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise DriplineError(f"{path}:1: the file is empty (expected a header row: email, reason)")
    separator = choose_separator("".join(lines[:200]), lines[first], _has_email)
    reader = records(lines, separator, first)
    header = next(reader)
    if header.problem is not None or not _has_email(header.values):
        found = ", ".join(repr(h) for h in header.values[:8])
        raise DriplineError(
            f"{path}:{header.line}: no 'email' column in the header row (email, reason; "
            f"found {found})"
        )
    columns = [_column(h) for h in header.values]
    problems: list[tuple[int, str]] = []
    rows: list[tuple[int, str, str]] = []
    for row in reader:
        if row.problem is not None:
            problems.append((row.line, row.problem))
            continue
        if not any(v.strip() for v in row.values):
            continue
        record = dict(zip(columns, row.values, strict=False))
        address = (record.get("email") or "").strip()
        if any("\udc80" <= c <= "\udcff" for v in row.values for c in v):
            problems.append((row.line, "not UTF-8 text; save the file as CSV UTF-8"))
            continue
        try:
            normalize_email(address)
        except DriplineError as err:
            problems.append((row.line, err.message))
            continue
        rows.append((row.line, address, (record.get("reason") or "").strip() or default_reason))
    result.problems = problems
    with write_transaction(engine) as conn:
        for _line, address, reason in rows:
            if suppress_in(conn, address, reason, source=f"import:{path.name}", now=now):
                result.added += 1
            else:
                result.already += 1
    return result
