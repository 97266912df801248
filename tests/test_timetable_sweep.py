"""The timetable against a brute-force reference, across daylight-saving changes, 2024-2030.

The reference walks local calendar days one by one and finds the send instant
by trying every UTC offset the zone uses that day and checking the result back
through UTC -> local conversion (the direction that is never ambiguous). A send
time that does not exist that day moves forward by the gap; one that occurs
twice takes the first. It shares nothing with :mod:`dripline.timetable` but
:class:`zoneinfo.ZoneInfo`'s UTC -> local conversion.

Sampling: every send time on the hour and half hour, four weekday sets, 36
zones. The enrollment instants sit where mistakes happen: the five local days
before each clock change in 2024-2030, a second either side of the send time
(and on it), plus a stride across the years. Which of those each combination
gets rotates, so together they cover every transition of every zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest

from dripline.campaign import Schedule
from dripline.timetable import Timetable, _StepRule

ZONES = (
    "America/Chicago",
    "America/New_York",
    "America/Los_Angeles",
    "America/Denver",
    "America/Phoenix",
    "America/Santiago",
    "America/Havana",
    "America/Asuncion",
    "America/St_Johns",
    "America/Nuuk",
    "America/Mexico_City",
    "America/Sao_Paulo",
    "Atlantic/Azores",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Berlin",
    "Europe/Kyiv",
    "Africa/Casablanca",
    "Africa/Cairo",
    "Asia/Beirut",
    "Asia/Gaza",
    "Asia/Jerusalem",
    "Asia/Tehran",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Australia/Perth",
    "Pacific/Chatham",
    "Pacific/Auckland",
    "Pacific/Norfolk",
    "Pacific/Apia",
    "Antarctica/Troll",
    "UTC",
)
SEND_TIMES = tuple(time(h, m) for h in range(24) for m in (0, 30))
WEEKDAY_SETS = ((0, 1, 2, 3, 4), (0, 1, 2, 3, 4, 5, 6), (1, 3), (5, 6))
# An immediate step, a day-0 step (the "has the send time passed?" rule), close steps
# (the "later day than the one before" rule) and a far one.
STEPS = (
    _StepRule(1, 0, True),
    _StepRule(2, 0, False),
    _StepRule(3, 1, False),
    _StepRule(4, 2, False),
    _StepRule(5, 6, False),
)
FIRST, LAST = datetime(2024, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)
ONE_SECOND = timedelta(seconds=1)


# -- the reference ---------------------------------------------------------------------


@cache
def reference_instant(zone_key: str, day: date, send_time: time) -> datetime:
    """The instant of ``send_time`` on local ``day``, worked out from UTC -> local only."""
    zone = ZoneInfo(zone_key)
    wall = datetime.combine(day, send_time)
    # Every offset in use within a day either side (offsets lie within -12 h .. +14 h).
    probes = [(wall + timedelta(hours=h)).replace(tzinfo=UTC) for h in (-15, -1, 13)]
    offsets = sorted({p.astimezone(zone).utcoffset() for p in probes}, reverse=True)

    def local(instant: datetime) -> datetime:
        return instant.astimezone(zone).replace(tzinfo=None)

    matches = sorted(
        (wall - off).replace(tzinfo=UTC)
        for off in offsets
        if off is not None and local((wall - off).replace(tzinfo=UTC)) == wall
    )
    if matches:
        return matches[0]  # occurs twice: the first
    before = probes[0].astimezone(zone).utcoffset()
    after = probes[-1].astimezone(zone).utcoffset()
    assert before is not None and after is not None and after > before, (zone_key, day)
    moved = wall + (after - before)  # did not occur: forward by the gap
    instant = (moved - after).replace(tzinfo=UTC)
    assert local(instant) == moved, (zone_key, day, send_time)
    return instant


def reference_due(
    zone_key: str, send_time: time, weekdays: tuple[int, ...], enrolled: datetime
) -> list[datetime]:
    """Walk local days: each step on the first allowed day, on or after its offset, after
    the previous step's day, whose send instant is not before the enrollment."""
    start = enrolled.astimezone(ZoneInfo(zone_key)).date()
    out: list[datetime] = []
    previous: date | None = None
    for rule in STEPS:
        if rule.immediately:
            out.append(enrolled)
            previous = start
            continue
        day = start + timedelta(days=rule.day)
        if previous is not None and day <= previous:
            day = previous + timedelta(days=1)
        while day.weekday() not in weekdays or (
            reference_instant(zone_key, day, send_time) < enrolled
        ):
            day += timedelta(days=1)
        out.append(reference_instant(zone_key, day, send_time))
        previous = day
    return out


# -- where to enroll -------------------------------------------------------------------


@cache
def transition_days(zone_key: str) -> tuple[date, ...]:
    """Local days on which the zone's UTC offset changes, 2024-2030."""
    zone = ZoneInfo(zone_key)
    days: list[date] = []
    moment = FIRST
    offset = moment.astimezone(zone).utcoffset()
    while moment < LAST:
        moment += timedelta(hours=6)
        now = moment.astimezone(zone).utcoffset()
        if now != offset:
            days.append(moment.astimezone(zone).date())
            offset = now
    return tuple(days)


def enrollments(zone_key: str, send_time: time, combo: int) -> list[datetime]:
    """Enrollment instants for one (zone, send time, weekdays) combination."""
    out: list[datetime] = []
    for index, changed in enumerate(transition_days(zone_key)):
        # Two of the five days before the change, rotating with the combination.
        for back in {(combo + index) % 5, (combo + index + 2) % 5}:
            day = changed - timedelta(days=back)
            slot = reference_instant(zone_key, day, send_time)
            out.append(slot + ONE_SECOND * (((combo + index + back) % 3) - 1))
    stride = timedelta(days=97, hours=5, minutes=30)  # walks through weekdays and hours
    moment = FIRST + timedelta(hours=combo)
    while moment < LAST:
        out.append(moment)
        moment += stride
    return out


@pytest.mark.parametrize("zone_key", ZONES)
def test_due_times_match_the_reference(zone_key: str) -> None:
    mismatches: list[str] = []
    checked = 0
    for s, send_time in enumerate(SEND_TIMES):
        for w, weekdays in enumerate(WEEKDAY_SETS):
            table = Timetable(Schedule(zone_key, send_time, weekdays), STEPS)
            for enrolled in enrollments(zone_key, send_time, s * len(WEEKDAY_SETS) + w):
                expected = reference_due(zone_key, send_time, weekdays, enrolled)
                got = table.due_times(enrolled, None)
                checked += 1
                if got != expected and len(mismatches) < 5:
                    zone = ZoneInfo(zone_key)
                    mismatches.append(
                        f"{send_time:%H:%M} days={weekdays} enrolled "
                        f"{enrolled.astimezone(zone):%a %Y-%m-%d %H:%M:%S %Z}: "
                        f"got {[f'{d.astimezone(zone):%a %m-%d %H:%M}' for d in got]}, "
                        f"expected {[f'{d.astimezone(zone):%a %m-%d %H:%M}' for d in expected]}"
                    )
    assert checked > 4000
    assert not mismatches, "\n".join(mismatches)


def test_every_sweep_zone_is_covered_and_the_named_ones_change_clocks() -> None:
    assert len(ZONES) >= 30
    for name in (
        "America/Santiago",
        "America/Havana",
        "Asia/Beirut",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
        "Pacific/Auckland",
    ):
        assert len(transition_days(name)) >= 12, name  # twice a year, 2024-2030
    assert transition_days("Asia/Kolkata") == ()


def test_reference_moves_a_missing_time_forward_and_takes_the_first_of_two() -> None:
    # Chicago 2026-03-08: 02:00 -> 03:00. Lord Howe 2026-04-05: 02:00 -> 01:30 (30 min).
    chicago = reference_instant("America/Chicago", date(2026, 3, 8), time(2, 30))
    assert chicago.astimezone(ZoneInfo("America/Chicago")).strftime("%H:%M") == "03:30"
    lord_howe = reference_instant("Australia/Lord_Howe", date(2026, 4, 5), time(1, 45))
    assert lord_howe == datetime(2026, 4, 4, 14, 45, tzinfo=UTC)  # +11:00, the first one


def test_chicago_midnight_after_spring_forward_weekend_is_monday() -> None:
    """The reported case: send_time 00:00, Mon-Fri, enrolled Friday 2026-03-06 00:00:01."""
    chicago = ZoneInfo("America/Chicago")
    steps = (_StepRule(1, 1, False), _StepRule(2, 2, False), _StepRule(3, 3, False))
    table = Timetable(Schedule("America/Chicago", time(0, 0), (0, 1, 2, 3, 4)), steps)
    due = table.due_times(datetime(2026, 3, 6, 0, 0, 1, tzinfo=chicago), None)
    assert [f"{d.astimezone(chicago):%a %Y-%m-%d %H:%M %Z}" for d in due] == [
        "Mon 2026-03-09 00:00 CDT",
        "Tue 2026-03-10 00:00 CDT",
        "Wed 2026-03-11 00:00 CDT",
    ]
