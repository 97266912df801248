"""The suppression list: addresses never enrolled or sent to again until removed.

Import (:func:`~dripline.store.enroll_many`), sign-up, ``subscribe`` and the
dispatcher's claim all consult it. An address is kept by its key (lower case,
punycode domain), so ``Ada@Example.com`` and ``ada@example.com`` are one entry.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, delete, insert, select

from ..errors import DriplineError
from ._bounce_models import Suppression
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


def import_suppressions(
    engine: Engine, path: Path, *, now: datetime, default_reason: str = "imported"
) -> SuppressionImport:
    """Add every address of a CSV with an ``email`` column (``reason`` optional).

    Bad rows are reported as (line, message) and skipped; valid rows are added in one
    transaction. Raises :class:`DriplineError` when the file cannot be read as CSV.
    """
    result = SuppressionImport(problems=[])
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise DriplineError(f"{path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise DriplineError(f"{path}: not UTF-8 text; save the CSV as UTF-8") from err
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as err:
        raise DriplineError(f"{path}:1: broken CSV: {err}") from err
    if "email" not in header:
        raise DriplineError(f"{path}:1: no 'email' column in the header row (email, reason)")
    rows: list[tuple[int, str, str]] = []
    try:
        for values in reader:
            line = reader.line_num
            record = dict(zip(header, values, strict=False))
            address = (record.get("email") or "").strip()
            if not any(v.strip() for v in values):
                continue
            try:
                normalize_email(address)
            except DriplineError as err:
                result.problems.append((line, err.message))  # type: ignore[union-attr]
                continue
            rows.append((line, address, (record.get("reason") or "").strip() or default_reason))
    except csv.Error as err:
        raise DriplineError(f"{path}:{reader.line_num}: broken CSV: {err}") from err
    with write_transaction(engine) as conn:
        for _line, address, reason in rows:
            if suppress_in(conn, address, reason, source=f"import:{path.name}", now=now):
                result.added += 1
            else:
                result.already += 1
    return result
