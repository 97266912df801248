"""When each step of a campaign is due for one subscriber.

A step is due on the subscriber's enrollment day in their time zone plus the
step's ``day`` offset, at the campaign's send time, moved forward to the next
allowed day: an allowed weekday that is not a public holiday, when the campaign
skips holidays (``[schedule] holidays``); ``send = "immediately"`` means at
enrollment. Steps stay on distinct local days, in order.

The arithmetic walks local calendar days (:class:`datetime.date`); only the
chosen day and the send time become an instant, through :mod:`zoneinfo` and
PEP 495's ``fold=0``: a send time that does not exist that day (the clocks
jumped over it) moves forward by the gap (02:30 on a 02:00 -> 03:00 day is 03:30),
one that occurs twice takes the first. Cron arithmetic on aware datetimes
(APScheduler's ``CronTrigger``, used here before) put a midnight send a day late
after a spring-forward weekend; a walk over dates cannot. APScheduler still runs
the timetable job itself (``scheduler.py``).

Due times are pure functions of (time zone, local day, whether enrollment came
after the send time, holiday region), so they are cached: importing 100,000
subscribers computes a few hundred distinct timetables, not half a million.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._holidays import Region, holiday_name, parse_region
from .campaign import Campaign, Schedule
from .errors import DriplineError

__all__ = [
    "Timetable",
    "UnknownTimeZoneError",
    "due_times",
    "resolve_zone",
    "retime_remaining",
    "slot_instant",
]


class UnknownTimeZoneError(DriplineError):
    """A subscriber's time zone is not an IANA name."""


@lru_cache(maxsize=1024)
def resolve_zone(name: str) -> ZoneInfo:
    """The zone for an IANA name such as ``Europe/London``; a clear error otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise UnknownTimeZoneError(
            f"unknown time zone {name!r} (use an IANA name like America/New_York)"
        ) from err


def slot_instant(day: date, send_time: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of ``send_time`` on the local calendar ``day`` in ``zone``.

    PEP 495 ``fold=0``: a wall time in a gap is read with the offset from before the
    gap, so it lands the gap's length later (moved forward by the gap); a wall time
    that occurs twice is its first occurrence.
    """
    return datetime.combine(day, send_time, tzinfo=zone).astimezone(UTC)


@lru_cache(maxsize=64)
def _region(text: str) -> Region:
    return parse_region(text)


@dataclass(frozen=True)
class _StepRule:
    number: int
    day: int
    immediately: bool
    id: str = ""  # the step's identity (see dripline.campaign.Step.id)


@dataclass(frozen=True)
class Timetable:
    """The part of a campaign that decides due times: its schedule and each step's day."""

    schedule: Schedule
    steps: tuple[_StepRule, ...]

    @classmethod
    def of(cls, campaign: Campaign) -> Timetable:
        rules = tuple(_StepRule(s.number, s.day, s.send_immediately, s.id) for s in campaign.steps)
        return cls(campaign.schedule, rules)

    @classmethod
    def from_rules(cls, schedule: Schedule, rules: list[tuple[int, int, bool, str]]) -> Timetable:
        """A timetable from (position, day, send immediately?, identity) per step."""
        return cls(schedule, tuple(_StepRule(*rule) for rule in rules))

    def number_of(self, identity: str) -> int | None:
        """The position of the step with ``identity``, or None when it has none."""
        for rule in self.steps:
            if rule.id == identity:
                return rule.number
        return None

    def zone_for(self, timezone: str | None) -> ZoneInfo:
        """The subscriber's zone, or the campaign default when they have none."""
        return resolve_zone(timezone or self.schedule.timezone)

    def region_for(self, country: str | None) -> Region | None:
        """Whose public holidays are skipped for a subscriber in ``country`` (ISO 3166-1
        alpha-2, or None): the campaign's region, theirs, or None for no holidays."""
        setting = self.schedule.holidays
        if setting is None:
            return None
        if setting == "subscriber":
            if country:
                try:
                    return _region(country.strip().upper())
                except ValueError:
                    pass  # checked at import; an old or hand-made row falls back
            default = self.schedule.holidays_default
            return _region(default) if default else None
        return _region(setting)

    def skip_reason(self, day: date, region: Region | None) -> str | None:
        """Why nothing goes out on the local ``day``: "weekday", a holiday's name, or None."""
        if day.weekday() not in self.schedule.weekdays:
            return "weekday"
        return holiday_name(region, day)

    def due_times(
        self, enrolled_at: datetime, timezone: str | None, country: str | None = None
    ) -> list[datetime]:
        """Every step's due time (aware UTC), in step order, for an enrollment at
        ``enrolled_at`` (naive means UTC) by a subscriber in ``timezone`` (IANA name, None
        for the campaign's) and ``country`` (ISO 3166-1 alpha-2, for ``holidays =
        "subscriber"``). Raises :class:`UnknownTimeZoneError` for an unknown zone."""
        enrolled_utc = _aware(enrolled_at).astimezone(UTC)
        return [
            enrolled_utc if due is None else due
            for due in self.due_plan(enrolled_at, timezone, country)
        ]

    def due_plan(
        self, enrolled_at: datetime, timezone: str | None, country: str | None = None
    ) -> tuple[datetime | None, ...]:
        """Like :meth:`due_times` but ``None`` for "at enrollment"; shared by everyone who
        enrolled on the same local day, so bulk callers can convert each plan once."""
        zone = self.zone_for(timezone)
        enrolled_utc = _aware(enrolled_at).astimezone(UTC)
        day = enrolled_utc.astimezone(zone).date()
        # Compared as instants, not wall times: on a day whose send time occurs twice, an
        # enrollment in the repeated hour may be after the first occurrence.
        after_send_time = enrolled_utc > slot_instant(day, self.schedule.send_time, zone)
        region = self.region_for(country)
        return _cached_due_times(self, zone.key, day, after_send_time, region)

    def retime_remaining(
        self,
        sent_step: int,
        sent_at: datetime,
        timezone: str | None,
        country: str | None = None,
        *,
        without: frozenset[int] = frozenset(),
    ) -> dict[int, datetime]:
        """New due times (aware UTC) for the steps after ``sent_step``, which went out at
        ``sent_at``.

        Keeps the campaign's spacing: step *j* lands ``day_j - day_sent`` local days after
        the day of the send, on the next allowed slot, each on a later local day than the
        one before. Steps numbered in ``without`` (skipped: their ``when`` was false) take
        no day and get no time.
        """
        zone = self.zone_for(timezone)
        region = self.region_for(country)
        sent_day = _aware(sent_at).astimezone(zone).date()
        sent_rule = next(r for r in self.steps if r.number == sent_step)
        result: dict[int, datetime] = {}
        previous_day = sent_day
        for rule in (r for r in self.steps if r.number > sent_step and r.number not in without):
            earliest = sent_day + timedelta(days=rule.day - sent_rule.day)
            day = self.next_send_day(max(earliest, previous_day + timedelta(days=1)), region)
            result[rule.number] = slot_instant(day, self.schedule.send_time, zone)
            previous_day = day
        return result

    def respace(
        self,
        current: dict[int, datetime],
        sent_step: int,
        sent_at: datetime,
        planned_at: datetime | None,
        timezone: str | None,
        country: str | None = None,
        *,
        without: frozenset[int] = frozenset(),
    ) -> dict[int, datetime]:
        """New due times (aware UTC) for the later steps in ``current`` (step number ->
        due time now) once ``sent_step``, planned for ``planned_at``, went out at ``sent_at``.

        Only what changes is returned. The next step (not in ``without``, the skipped
        ones) due on the send's local day or before: every later step is re-timed from
        the send (:meth:`retime_remaining`). The send late (on a later local day than
        planned: an outage, a retry): each later step keeps at least the campaign's
        spacing from the day it actually went out, never moving earlier. Otherwise (the
        send on its planned day) nothing moves.
        """
        after = [n for n in sorted(current) if n > sent_step and n not in without]
        if not after:
            return {}
        zone = self.zone_for(timezone)
        sent_day = _aware(sent_at).astimezone(zone).date()
        colliding = _aware(current[after[0]]).astimezone(zone).date() <= sent_day
        late = planned_at is not None and sent_day > _aware(planned_at).astimezone(zone).date()
        if not (colliding or late):
            return {}
        moved = self.retime_remaining(sent_step, sent_at, timezone, country, without=without)
        return {
            n: due
            for n, due in moved.items()
            if n in current and (colliding or due > _aware(current[n]))
        }

    def next_send_day(self, earliest: date, region: Region | None) -> date:
        """The first local day on or after ``earliest`` that emails go out on."""
        day = earliest
        for _ in range(366):  # holidays never fill a year; a bound instead of trusting data
            if self.skip_reason(day, region) is None:
                return day
            day += timedelta(days=1)
        raise DriplineError(f"no allowed send day in the year after {earliest}")


@lru_cache(maxsize=65536)
def _cached_due_times(
    table: Timetable,
    zone_key: str,
    enrolled_day: date,
    after_send_time: bool,
    region: Region | None,
) -> tuple[datetime | None, ...]:
    """Due times for one enrollment day; ``None`` marks "at enrollment" (immediate steps)."""
    zone = ZoneInfo(zone_key)
    send_time = table.schedule.send_time
    previous_day: date | None = None
    out: list[datetime | None] = []
    for rule in table.steps:
        if rule.immediately:
            out.append(None)
            previous_day = enrolled_day
            continue
        earliest = enrolled_day + timedelta(days=rule.day)
        if rule.day == 0 and after_send_time:
            # A day-0 step never goes out before the subscriber enrolled.
            earliest = enrolled_day + timedelta(days=1)
        if previous_day is not None and earliest <= previous_day:
            earliest = previous_day + timedelta(days=1)
        day = table.next_send_day(earliest, region)
        out.append(slot_instant(day, send_time, zone))
        previous_day = day
    return tuple(out)


def _aware(moment: datetime) -> datetime:
    """Naive datetimes are UTC throughout dripline (that is how the store keeps them)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def due_times(
    campaign: Campaign, enrolled_at: datetime, timezone: str | None, country: str | None = None
) -> list[datetime]:
    """Every step's due time (UTC) for a subscriber enrolled at ``enrolled_at``
    (see :meth:`Timetable.due_times`)."""
    return Timetable.of(campaign).due_times(enrolled_at, timezone, country)


def retime_remaining(
    campaign: Campaign,
    sent_step: int,
    sent_at: datetime,
    timezone: str | None,
    country: str | None = None,
) -> dict[int, datetime]:
    """New due times for the steps after ``sent_step`` (see :meth:`Timetable.retime_remaining`)."""
    return Timetable.of(campaign).retime_remaining(sent_step, sent_at, timezone, country)
