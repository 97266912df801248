"""When each step of a campaign is due for one subscriber.

A step is due on the subscriber's enrollment day in their time zone plus the
step's ``day`` offset, at the campaign's send time, moved forward to the next
allowed weekday; ``send = "immediately"`` means at enrollment. Steps stay on
distinct local days, in order. The wall-clock arithmetic is APScheduler's
:class:`~apscheduler.triggers.cron.CronTrigger`, so 09:00 local stays 09:00
local across a daylight-saving change.

Due times are pure functions of (time zone, local day, whether enrollment came
after the send time), so they are cached: importing 100,000 subscribers computes
a few hundred distinct timetables, not half a million cron look-ups.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from .campaign import WEEKDAYS, Campaign, Schedule
from .errors import DriplineError

__all__ = [
    "Timetable",
    "UnknownTimeZoneError",
    "due_times",
    "resolve_zone",
    "retime_remaining",
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

    def due_times(self, enrolled_at: datetime, timezone: str | None) -> list[datetime]:
        """Every step's due time (UTC), in step order, for an enrollment at ``enrolled_at``."""
        enrolled_utc = _aware(enrolled_at).astimezone(UTC)
        return [
            enrolled_utc if due is None else due for due in self.due_plan(enrolled_at, timezone)
        ]

    def due_plan(self, enrolled_at: datetime, timezone: str | None) -> tuple[datetime | None, ...]:
        """Like :meth:`due_times` but ``None`` for "at enrollment"; shared by everyone who
        enrolled on the same local day, so bulk callers can convert each plan once."""
        zone = self.zone_for(timezone)
        local = _aware(enrolled_at).astimezone(zone)
        after_send_time = local.time().replace(tzinfo=None) > self.schedule.send_time
        return _cached_due_times(self, zone.key, local.date(), after_send_time)

    def retime_remaining(
        self, sent_step: int, sent_at: datetime, timezone: str | None
    ) -> dict[int, datetime]:
        """New due times (UTC) for the steps after ``sent_step``, which went out at ``sent_at``.

        Keeps the campaign's spacing: step *j* lands ``day_j - day_sent`` local days after
        the day of the send, on the next allowed slot, each on a later local day than the
        one before.
        """
        zone = self.zone_for(timezone)
        sent_local = _aware(sent_at).astimezone(zone)
        sent_rule = next(r for r in self.steps if r.number == sent_step)
        later = tuple(r for r in self.steps if r.number > sent_step)
        result: dict[int, datetime] = {}
        previous_day = sent_local.date()
        trigger = _trigger(self.schedule, zone.key)
        for rule in later:
            earliest = sent_local.date() + timedelta(days=rule.day - sent_rule.day)
            due = _next_slot(trigger, zone, max(earliest, previous_day + timedelta(days=1)))
            result[rule.number] = due.astimezone(UTC)
            previous_day = due.date()
        return result


@lru_cache(maxsize=256)
def _trigger(schedule: Schedule, zone_key: str) -> CronTrigger:
    days = ",".join(WEEKDAYS[d] for d in schedule.weekdays)
    return CronTrigger(
        day_of_week=days,
        hour=schedule.send_time.hour,
        minute=schedule.send_time.minute,
        timezone=ZoneInfo(zone_key),
    )


def _next_slot(trigger: CronTrigger, zone: ZoneInfo, earliest_day: date) -> datetime:
    """The first allowed send time on or after the local day ``earliest_day``."""
    start = datetime.combine(earliest_day, time.min, tzinfo=zone)
    due = trigger.get_next_fire_time(None, start)
    if due is None:  # pragma: no cover - a weekly cron always fires again
        raise DriplineError(f"the schedule never fires after {earliest_day}")
    return due.astimezone(zone)


@lru_cache(maxsize=65536)
def _cached_due_times(
    table: Timetable, zone_key: str, enrolled_day: date, after_send_time: bool
) -> tuple[datetime | None, ...]:
    """Due times for one enrollment day; ``None`` marks "at enrollment" (immediate steps)."""
    zone = ZoneInfo(zone_key)
    trigger = _trigger(table.schedule, zone_key)
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
        due = _next_slot(trigger, zone, earliest)
        out.append(due.astimezone(UTC))
        previous_day = due.date()
    return tuple(out)


def _aware(moment: datetime) -> datetime:
    """Naive datetimes are UTC throughout dripline (that is how the store keeps them)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def due_times(campaign: Campaign, enrolled_at: datetime, timezone: str | None) -> list[datetime]:
    """Every step's due time (UTC) for a subscriber enrolled at ``enrolled_at``."""
    return Timetable.of(campaign).due_times(enrolled_at, timezone)


def retime_remaining(
    campaign: Campaign, sent_step: int, sent_at: datetime, timezone: str | None
) -> dict[int, datetime]:
    """New due times for the steps after ``sent_step`` (see :meth:`Timetable.retime_remaining`)."""
    return Timetable.of(campaign).retime_remaining(sent_step, sent_at, timezone)
