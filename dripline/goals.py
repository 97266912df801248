"""Goal events, for ``dripline event`` and ``POST /api/events``: check, then record.

Both doors take the same fields and give the same errors; :func:`record_goal_event`
reads each campaign's ``[goal] event`` from the files and records the event with
:func:`dripline.store.record_event` (one transaction: the event, the conversions and
the cancelled deliveries).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from ._keys import closest
from .campaign import EVENT_NAME, campaign_slugs, load_campaign
from .errors import DriplineError
from .store import EventBeforeEnrollmentError, RecordedEvent, record_event

__all__ = [
    "CLOCK_SKEW",
    "EventInputError",
    "campaign_goals",
    "goal_typo",
    "parse_event_data",
    "parse_event_time",
    "record_goal_event",
    "strict_json",
]

_MAX_DATA_BYTES = 16 * 1024
_MAX_ID = 200
# An event's time may run this far ahead of ours (the sender's clock, not a plan).
CLOCK_SKEW = timedelta(minutes=5)


class EventInputError(DriplineError):
    """An event field is malformed (its message names the field)."""


def campaign_goals(campaigns_dir: Path) -> dict[str, str]:
    """Each campaign's goal event by slug (campaigns without one, or that do not load, left
    out: a broken file must not stop a conversion being recorded for the others)."""
    return _goals_and_broken(campaigns_dir)[0]


def _goals_and_broken(campaigns_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(goal event by slug, error by slug of the campaigns that do not load)."""
    goals: dict[str, str] = {}
    broken: dict[str, str] = {}
    for slug in campaign_slugs(campaigns_dir):
        try:
            goal = load_campaign(campaigns_dir / slug).goal_event
        except DriplineError as err:
            broken[slug] = str(err)
            continue
        if goal:
            goals[slug] = goal
    return goals, broken


def goal_typo(name: str, goals: Mapping[str, str]) -> str | None:
    """The goal event ``name`` is probably a misspelling of ("Booked-Consult" for
    "booked-consult": goals match exactly), or None when ``name`` is a goal or none is close
    (difflib ratio >= 0.6, as for misspelt keys; an unrelated event is normal, not a typo)."""
    known = set(goals.values())
    if name in known:
        return None
    return closest(name, known)


def parse_event_time(value: object, field: str = "at") -> datetime | None:
    """An ISO 8601 instant (naive means UTC) as aware UTC; None when not given."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EventInputError(f"{field}: an ISO 8601 date and time is expected")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventInputError(
            f"{field}: not an ISO 8601 date and time: {value!r} (e.g. 2026-03-05T09:00:00Z)"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-12:00 is past the last datetime in UTC
        moment = datetime.max.replace(tzinfo=UTC)
    if not 1970 <= moment.year <= 9000:
        raise EventInputError(f"{field}: {value!r} is outside the years 1970 to 9000")
    return moment


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (JSON has no NaN or Infinity)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key!r} appears twice")
        found[key] = value
    return found


def strict_json(text: str | bytes) -> Any:
    """``json.loads`` without Python's extensions: ``NaN``, ``Infinity`` and ``-Infinity``
    (RFC 8259 has none of them, and PostgreSQL's ``json`` type rejects them) raise
    ``ValueError``, and so does a key given twice in one object (RFC 8259 section 4: names
    SHOULD be unique; the last would silently win); malformed text raises
    ``json.JSONDecodeError`` (a ``ValueError``), and so does nesting deeper than the
    parser's recursion allows."""
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def parse_event_data(text: str | None, field: str = "--json-data") -> dict[str, Any]:
    """A JSON object of extra data (at most 16 KiB), or {} when not given."""
    if not text:
        return {}
    if len(text.encode("utf-8")) > _MAX_DATA_BYTES:
        raise EventInputError(f"{field}: more than {_MAX_DATA_BYTES // 1024} KiB")
    try:
        data = strict_json(text)
    except json.JSONDecodeError as err:
        raise EventInputError(f"{field}: not JSON ({err.msg} at column {err.colno})") from None
    except ValueError as err:
        raise EventInputError(f"{field}: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise EventInputError(f"{field}: a JSON object ({{...}}) is expected")
    return data


def _check(name: object, external_id: object) -> tuple[str, str | None]:
    if not isinstance(name, str) or not re.fullmatch(EVENT_NAME, name):
        raise EventInputError(
            "event: a name of letters, digits, '.', '_' and '-' (1-100 characters) is expected"
        )
    if external_id is not None and (
        not isinstance(external_id, str) or not 0 < len(external_id) <= _MAX_ID
    ):
        raise EventInputError(f"id: a string of 1 to {_MAX_ID} characters is expected")
    return name, external_id


def record_goal_event(
    engine: Engine,
    campaigns_dir: Path,
    email: str,
    name: object,
    *,
    at: datetime | None,
    now: datetime,
    data: Mapping[str, Any] | None = None,
    external_id: object = None,
    source: str,
    at_field: str = "at",
) -> RecordedEvent:
    """Check and record one event; raises EventInputError or NotSubscribedError.

    ``at`` (aware UTC) more than :data:`CLOCK_SKEW` after ``now``, or before the
    subscriber's first enrollment, is an EventInputError naming ``at_field``. While a
    campaign the subscriber is in does not load, its goal is unknown: nothing is recorded
    and :class:`~dripline.store.CampaignUnavailableError` says which file (retry later).
    """
    event, identifier = _check(name, external_id)
    if at is not None and at > now + CLOCK_SKEW:
        raise EventInputError(
            f"{at_field}: {at.isoformat()} is in the future (now {now.isoformat()}); "
            "an event is recorded once it has happened"
        )
    goals, broken = _goals_and_broken(campaigns_dir)
    try:
        return record_event(
            engine,
            email,
            event,
            at=at or now,
            now=now,
            goals=goals,
            unavailable=broken,
            data=data,
            external_id=identifier,
            source=source,
        )
    except EventBeforeEnrollmentError as err:
        raise EventInputError(
            f"{at_field}: {(at or now).isoformat()} is before the subscriber's enrollment: {err}"
        ) from None
