"""Checking and normalizing what users give for a subscriber: address, name, zone, time."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email

from ..errors import DriplineError
from ..timetable import resolve_zone

__all__ = [
    "InvalidSubscriberError",
    "NormalizedEmail",
    "check_name",
    "check_zone",
    "derive_first_name",
    "from_db_time",
    "normalize_email",
    "parse_moment",
    "to_db_time",
]


class InvalidSubscriberError(DriplineError):
    """An address, name, time zone or date given for a subscriber is not usable."""


class NormalizedEmail(str):
    """An address with its domain in punycode; ``key`` is the case-insensitive identity."""

    key: str

    def __new__(cls, address: str) -> NormalizedEmail:
        value = super().__new__(cls, address)
        value.key = address.lower()
        return value


def normalize_email(raw: str) -> NormalizedEmail:
    """Validate ``raw`` (syntax only, no DNS) and put an IDNA domain in punycode."""
    text = raw.strip()
    if any(c in text for c in "\r\n\0"):
        raise InvalidSubscriberError(f"not an email address: {raw!r}")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as err:
        raise InvalidSubscriberError(f"not an email address: {raw!r} ({err})") from err
    return NormalizedEmail(f"{checked.local_part}@{checked.ascii_domain}")


def derive_first_name(name: str) -> str:
    """The first word of a full name: "Ada Lovelace" -> "Ada" (templates greet with it)."""
    parts = name.split()
    return parts[0] if parts else ""


def check_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if any(c in name for c in "\r\n\0"):
        raise InvalidSubscriberError("a name must be one line")
    if len(cleaned) > 200:
        raise InvalidSubscriberError("a name is limited to 200 characters")
    return cleaned


def check_zone(name: str | None) -> str | None:
    """An IANA zone name, or ``None`` for "use the campaign's default"."""
    if name is None or not name.strip():
        return None
    try:
        return resolve_zone(name.strip()).key
    except DriplineError as err:
        raise InvalidSubscriberError(err.message) from err


def parse_moment(text: str, zone: ZoneInfo) -> datetime:
    """An ISO 8601 date/time; without an offset it is read in ``zone``. Returns aware UTC."""
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw.replace(" ", "T", 1) if "T" not in raw else raw)
    except ValueError as err:
        raise InvalidSubscriberError(
            f"not an ISO 8601 date/time: {text!r} (e.g. 2026-03-05T20:00 or 2026-03-05T20:00-08:00)"
        ) from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def to_db_time(moment: datetime) -> datetime:
    """Aware -> naive UTC, the form the tables hold."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def from_db_time(moment: datetime | None) -> datetime | None:
    """Naive UTC from a table -> aware UTC."""
    if moment is None:
        return None
    if isinstance(moment, str):  # raw SQL on SQLite returns text
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
