"""Checking and normalizing what users give for a subscriber: address, name, zone, time.

Every text value is held to the renderer's own rule
(:func:`dripline.mime.header_value_problem`): a value accepted here can never make
a send fail later for holding a control character or a line break, whichever
template (subject included) it ends up in. Addresses are held to what the
message builder can carry (:func:`dripline.mime.address_problem`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email

from .._holidays import check_country as _known_country
from ..errors import DriplineError
from ..mime import address_problem, header_value_problem
from ..timetable import resolve_zone
from ._names import derive_first_name

__all__ = [
    "InvalidSubscriberError",
    "NormalizedEmail",
    "check_country",
    "check_name",
    "check_value",
    "check_zone",
    "country_of",
    "derive_first_name",
    "from_db_time",
    "normalize_email",
    "parse_moment",
    "to_db_time",
    "zone_warning",
]

NAME_MAX = 200  # the subscribers.name column
FIRST_NAME_MAX = 100  # the subscribers.first_name column
VALUE_MAX = 10_000  # one attribute value: a sentence or a URL, not a document


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
    address = f"{checked.local_part}@{checked.ascii_domain}"
    problem = address_problem(address)
    if problem is not None:
        raise InvalidSubscriberError(f"cannot send to {raw.strip()!r}: {problem}")
    return NormalizedEmail(address)


def _label(column: str) -> str:
    """How a message names where a value came from: a CSV column or a flag (``--name``)."""
    return column if column.startswith("-") else f"column {column!r}"


def check_value(value: str, column: str, *, limit: int = VALUE_MAX) -> str:
    """``value`` of ``column`` if every email can carry it; raises InvalidSubscriberError.

    White space is trimmed; inside, it stays as given (an attribute may be a URL).
    """
    problem = header_value_problem(value)
    if problem is not None:
        raise InvalidSubscriberError(f"{_label(column)} holds {problem}")
    cleaned = value.strip()
    if len(cleaned) > limit:
        raise InvalidSubscriberError(
            f"{_label(column)} is limited to {limit:,} characters (it has {len(cleaned):,})"
        )
    return cleaned


def check_name(name: str, column: str = "name") -> str:
    """A name on one line, white space collapsed; raises InvalidSubscriberError."""
    if any(c in name for c in "\r\n\0"):
        raise InvalidSubscriberError(f"{_label(column)}: a name must be one line")
    limit = FIRST_NAME_MAX if "first" in column else NAME_MAX
    return " ".join(check_value(name, column, limit=limit).split())


def check_country(code: str | None) -> str | None:
    """An ISO 3166-1 alpha-2 country code, upper-cased, or None when empty."""
    if code is None or not code.strip():
        return None
    try:
        return _known_country(code)
    except ValueError as err:
        raise InvalidSubscriberError(str(err)) from err


def country_of(attributes: dict[str, Any] | None) -> str | None:
    """The ``country`` attribute of a stored subscriber (checked when it was stored)."""
    value = (attributes or {}).get("country")
    return value if isinstance(value, str) and value else None


def check_zone(name: str | None) -> str | None:
    """An IANA zone name, or ``None`` for "use the campaign's default"."""
    if name is None or not name.strip():
        return None
    try:
        return resolve_zone(name.strip()).key
    except DriplineError as err:
        raise InvalidSubscriberError(err.message) from err


_UTC_NAMES = frozenset(
    {"UTC", "UCT", "GMT", "Zulu", "Universal", "Greenwich", "GMT0", "GMT+0", "GMT-0"}
)
_SUGGESTIONS = {
    "EST": "America/New_York (or America/Cancun, America/Panama, which stay on EST)",
    "MST": "America/Denver (or America/Phoenix, which stays on MST)",
    "HST": "Pacific/Honolulu",
    "EST5EDT": "America/New_York",
    "CST6CDT": "America/Chicago",
    "MST7MDT": "America/Denver",
    "PST8PDT": "America/Los_Angeles",
    "CET": "Europe/Paris or Europe/Berlin",
    "MET": "Europe/Paris or Europe/Berlin",
    "EET": "Europe/Athens or Europe/Helsinki",
    "WET": "Europe/Lisbon",
}


def zone_warning(name: str | None) -> str | None:
    """A warning for a zone name that is an offset rather than a place (``EST``,
    ``Etc/GMT+5``): valid, but it never follows a place's daylight-saving changes."""
    if not name:
        return None
    key = name.removeprefix("Etc/")
    if key in _UTC_NAMES or ("/" in name and not name.startswith("Etc/")):
        return None
    suggestion = _SUGGESTIONS.get(key, "the Area/City name of the place, e.g. America/New_York")
    if key in {"EST5EDT", "CST6CDT", "MST7MDT", "PST8PDT", "CET", "MET", "EET", "WET"}:
        what = "is a legacy rule name, not a place (its daylight saving may differ from theirs)"
    else:
        what = "is a fixed UTC offset with no daylight saving"
    return f"time zone {name!r} {what}; use {suggestion}"


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
