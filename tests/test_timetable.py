"""Due times of the real ketamine campaign in several time zones, across DST changes."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dripline.campaign import Campaign, load_campaign
from dripline.errors import DriplineError
from dripline.timetable import (
    Timetable,
    UnknownTimeZoneError,
    due_times,
    resolve_zone,
    retime_remaining,
)

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = load_campaign(ROOT / "campaigns" / "ketamine-therapy")
TABLE = Timetable.of(CAMPAIGN)


def local_times(enrolled_local: datetime, tz: str | None) -> list[datetime]:
    zone = ZoneInfo(tz or CAMPAIGN.schedule.timezone)
    return [d.astimezone(zone) for d in TABLE.due_times(enrolled_local, tz)]


def fmt(moments: list[datetime]) -> list[str]:
    return [m.strftime("%a %Y-%m-%d %H:%M %Z") for m in moments]


def test_worked_example_los_angeles_march_dst():
    la = ZoneInfo("America/Los_Angeles")
    enrolled = datetime(2026, 3, 5, 20, 0, tzinfo=la)
    due = local_times(enrolled, "America/Los_Angeles")
    assert due[0] == enrolled  # step 1 at once
    assert fmt(due[1:]) == [
        "Mon 2026-03-09 09:00 PDT",  # day 2 is a Saturday; clocks changed on 03-08
        "Tue 2026-03-10 09:00 PDT",  # day 4 is Monday, taken by step 2: next day after it
        "Wed 2026-03-11 09:00 PDT",
        "Fri 2026-03-13 09:00 PDT",
        "Mon 2026-03-16 09:00 PDT",  # day 10 is a Sunday
    ]
    # UTC offsets really changed: 09:00 PDT is 16:00 UTC.
    assert TABLE.due_times(enrolled, "America/Los_Angeles")[1] == datetime(
        2026, 3, 9, 16, 0, tzinfo=UTC
    )


def test_subscriber_without_zone_uses_campaign_default():
    enrolled = datetime(2026, 3, 6, 4, 0, tzinfo=UTC)  # Thu 20:00 PST
    assert TABLE.due_times(enrolled, None) == TABLE.due_times(enrolled, "America/Los_Angeles")


def test_los_angeles_november_fall_back_keeps_nine_local():
    la = ZoneInfo("America/Los_Angeles")
    enrolled = datetime(2026, 10, 29, 10, 0, tzinfo=la)  # Thursday, PDT
    due = local_times(enrolled, "America/Los_Angeles")
    assert fmt(due[1:]) == [
        "Mon 2026-11-02 09:00 PST",  # day 2 is Saturday 10-31; clocks fell back on 11-01
        "Tue 2026-11-03 09:00 PST",
        "Wed 2026-11-04 09:00 PST",
        "Fri 2026-11-06 09:00 PST",
        "Mon 2026-11-09 09:00 PST",
    ]
    assert due[1].astimezone(UTC).hour == 17  # 09:00 PST = 17:00 UTC (was 16:00 in PDT)


def test_kolkata_has_no_dst_and_half_hour_offset():
    zone = ZoneInfo("Asia/Kolkata")
    enrolled = datetime(2026, 6, 1, 8, 0, tzinfo=zone)  # Monday
    due = local_times(enrolled, "Asia/Kolkata")
    assert fmt(due[1:]) == [
        "Wed 2026-06-03 09:00 IST",
        "Fri 2026-06-05 09:00 IST",
        "Mon 2026-06-08 09:00 IST",  # day 6 is Sunday
        "Tue 2026-06-09 09:00 IST",
        "Thu 2026-06-11 09:00 IST",
    ]
    assert due[1].astimezone(UTC).strftime("%H:%M") == "03:30"


def test_auckland_southern_hemisphere_dst_end_in_april():
    zone = ZoneInfo("Pacific/Auckland")
    enrolled = datetime(2026, 4, 1, 12, 0, tzinfo=zone)  # Wednesday, NZDT
    due = local_times(enrolled, "Pacific/Auckland")
    assert fmt(due[1:]) == [
        "Fri 2026-04-03 09:00 NZDT",
        "Mon 2026-04-06 09:00 NZST",  # day 4 is Sunday 04-05, the day clocks went back
        "Tue 2026-04-07 09:00 NZST",
        "Thu 2026-04-09 09:00 NZST",
        "Mon 2026-04-13 09:00 NZST",  # day 10 is Saturday
    ]
    assert [d.astimezone(UTC).hour for d in due[1:3]] == [20, 21]


def test_london_spring_forward():
    zone = ZoneInfo("Europe/London")
    enrolled = datetime(2026, 3, 26, 9, 30, tzinfo=zone)  # Thursday, GMT
    due = local_times(enrolled, "Europe/London")
    assert fmt(due[1:]) == [
        "Mon 2026-03-30 09:00 BST",  # day 2 Saturday; clocks went forward Sunday 03-29
        "Tue 2026-03-31 09:00 BST",
        "Wed 2026-04-01 09:00 BST",
        "Fri 2026-04-03 09:00 BST",
        "Mon 2026-04-06 09:00 BST",
    ]


def test_no_step_lands_on_a_weekend_and_days_are_distinct_for_a_whole_year():
    zone = ZoneInfo("Europe/London")
    for day_of_year in range(365):
        enrolled = datetime(2026, 1, 1, 12, 0, tzinfo=zone) + timedelta(days=day_of_year)
        due = local_times(enrolled, "Europe/London")
        days = [d.date() for d in due]
        assert days == sorted(set(days)), enrolled
        assert all(d.weekday() < 5 for d in due[1:]), enrolled
        assert all(d.strftime("%H:%M") == "09:00" for d in due[1:]), enrolled


def test_subscription_at_2359_local_counts_from_that_local_day():
    la = ZoneInfo("America/Los_Angeles")
    enrolled = datetime(2026, 3, 2, 23, 59, tzinfo=la)  # Monday 23:59 PST = Tue 07:59 UTC
    due = local_times(enrolled, "America/Los_Angeles")
    assert due[0] == enrolled
    # Day 2 from Monday (local), not from Tuesday (UTC): Wednesday.
    assert fmt(due[1:3]) == ["Wed 2026-03-04 09:00 PST", "Fri 2026-03-06 09:00 PST"]


def test_unknown_time_zone_is_a_clear_user_error():
    with pytest.raises(UnknownTimeZoneError, match="Mars/Olympus"):
        resolve_zone("Mars/Olympus")


def test_retime_after_outage_keeps_spacing_on_later_days():
    la = ZoneInfo("America/Los_Angeles")
    sent_at = datetime(2026, 3, 12, 15, 0, tzinfo=la)  # step 2 sent late, on Thursday
    new = TABLE.retime_remaining(2, sent_at, "America/Los_Angeles")
    assert sorted(new) == [3, 4, 5, 6]
    assert fmt([new[n].astimezone(la) for n in (3, 4, 5, 6)]) == [
        "Mon 2026-03-16 09:00 PDT",  # +2 days is Saturday
        "Tue 2026-03-17 09:00 PDT",
        "Wed 2026-03-18 09:00 PDT",  # step 5 is 6 days after step 2
        "Fri 2026-03-20 09:00 PDT",
    ]


# --- the module's public functions and its limits, each on both sides ---

LA = ZoneInfo("America/Los_Angeles")


def _with_day0_step() -> Campaign:
    """The campaign with step 1 at the send time of enrollment day instead of immediately."""
    first = replace(CAMPAIGN.steps[0], send_immediately=False, day=0)
    return replace(CAMPAIGN, steps=(first, *CAMPAIGN.steps[1:]))


@pytest.mark.parametrize(
    ("enrolled", "first_due"),
    [
        (datetime(2026, 3, 5, 8, 59, 59, tzinfo=LA), datetime(2026, 3, 5, 9, 0, tzinfo=LA)),
        # Exactly at the send time: that very slot, not the next day's.
        (datetime(2026, 3, 5, 9, 0, tzinfo=LA), datetime(2026, 3, 5, 9, 0, tzinfo=LA)),
        # A microsecond after it: the slot has passed, the next allowed day.
        (datetime(2026, 3, 5, 9, 0, 0, 1, tzinfo=LA), datetime(2026, 3, 6, 9, 0, tzinfo=LA)),
        # Friday after the send time: Monday (weekends are not allowed).
        (datetime(2026, 3, 6, 9, 1, tzinfo=LA), datetime(2026, 3, 9, 9, 0, tzinfo=LA)),
    ],
    ids=["before", "exactly-at", "just-after", "friday-after"],
)
def test_enrolling_at_the_send_time_gets_that_days_slot(
    enrolled: datetime, first_due: datetime
) -> None:
    due = due_times(_with_day0_step(), enrolled, "America/Los_Angeles")
    assert due[0] == first_due and due[0] >= enrolled
    assert len(due) == len(CAMPAIGN.steps)
    assert due[1] > due[0]


def test_due_times_function_gives_aware_utc_whatever_the_machine_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # a server not on UTC must not leak its zone
    time.tzset()
    try:
        enrolled = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
        due = due_times(CAMPAIGN, enrolled, "America/Los_Angeles")
        assert due == Timetable.of(CAMPAIGN).due_times(enrolled, "America/Los_Angeles")
        assert all(d.tzinfo is UTC for d in due)
        assert due[0] == datetime(2026, 3, 6, 4, 0, tzinfo=UTC)  # step 1: at enrollment
        assert due[1] == datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
        # Naive datetimes are UTC, as the store keeps them.
        naive = datetime(2026, 3, 6, 4, 0)
        assert due_times(CAMPAIGN, naive, "America/Los_Angeles") == due
        # 15:00 in Los Angeles is already the next day in Kolkata: the subscriber's day counts.
        sent_at = datetime(2026, 3, 12, 15, 0, tzinfo=LA)
        retimed = retime_remaining(CAMPAIGN, 2, sent_at, "America/Los_Angeles")
        days = {3: 16, 4: 17, 5: 18, 6: 20}
        assert retimed == {n: datetime(2026, 3, d, 16, 0, tzinfo=UTC) for n, d in days.items()}
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_retime_remaining_function_matches_the_method() -> None:
    sent_at = datetime(2026, 3, 12, 15, 0, tzinfo=LA)
    new = retime_remaining(CAMPAIGN, 2, sent_at, "America/Los_Angeles")
    assert new == Timetable.of(CAMPAIGN).retime_remaining(2, sent_at, "America/Los_Angeles")
    assert new[3] == datetime(2026, 3, 16, 16, 0, tzinfo=UTC)
    assert all(d.tzinfo is UTC for d in new.values())
    assert retime_remaining(CAMPAIGN, 6, sent_at, None) == {}  # nothing after the last step
    # A subscriber without a zone is retimed in the campaign's zone.
    assert retime_remaining(CAMPAIGN, 2, sent_at, None) == new
    # In another zone the slots are that zone's 09:00.
    london = retime_remaining(CAMPAIGN, 2, sent_at, "Europe/London")
    assert london[3] == datetime(2026, 3, 16, 9, 0, tzinfo=UTC)


def test_retime_keeps_steps_on_distinct_later_days_even_when_days_are_equal() -> None:
    # Steps 3 and 4 both on day 4: each still gets a later local day than the one before.
    steps = list(CAMPAIGN.steps)
    steps[3] = replace(steps[3], day=steps[2].day)
    campaign = replace(CAMPAIGN, steps=tuple(steps))
    sent_at = datetime(2026, 3, 9, 9, 0, tzinfo=LA)  # step 2 on Monday
    new = retime_remaining(campaign, 2, sent_at, "America/Los_Angeles")
    days = [new[n].astimezone(LA).date() for n in (3, 4, 5, 6)]
    assert days == sorted(set(days)) and days[0] > sent_at.date()


def _with_holidays(setting: str | None, default: str | None = None) -> Campaign:
    schedule = replace(CAMPAIGN.schedule, holidays=setting, holidays_default=default)
    return replace(CAMPAIGN, schedule=schedule)


def test_next_send_day_walks_one_day_at_a_time_past_weekends_and_holidays() -> None:
    table = Timetable.of(_with_holidays("US"))
    us = table.region_for(None)
    assert us == ("US", None)
    assert table.next_send_day(date(2026, 3, 7), us) == date(2026, 3, 9)  # Saturday -> Monday
    assert table.next_send_day(date(2026, 3, 8), us) == date(2026, 3, 9)  # Sunday -> Monday
    assert table.next_send_day(date(2026, 3, 9), us) == date(2026, 3, 9)  # Monday itself
    assert table.next_send_day(date(2026, 11, 26), us) == date(2026, 11, 27)  # Thanksgiving
    assert table.next_send_day(date(2026, 11, 26), None) == date(2026, 11, 26)
    assert table.skip_reason(date(2026, 3, 7), us) == "weekday"
    assert table.skip_reason(date(2026, 11, 26), us) == "Thanksgiving Day"
    assert table.skip_reason(date(2026, 11, 26), None) is None
    assert table.skip_reason(date(2026, 11, 27), us) is None


def test_a_schedule_that_never_sends_is_a_clear_error() -> None:
    never = Timetable(replace(CAMPAIGN.schedule, weekdays=()), Timetable.of(CAMPAIGN).steps)
    with pytest.raises(DriplineError, match=r"^no allowed send day in the year after 2026-03-05$"):
        never.next_send_day(date(2026, 3, 5), None)


def test_retime_skips_the_subscribers_own_holidays() -> None:
    campaign = _with_holidays("subscriber")
    sent_at = datetime(2026, 11, 24, 9, 0, tzinfo=LA)  # step 2 on the Tuesday
    us = retime_remaining(campaign, 2, sent_at, "America/Los_Angeles", "US")
    de = retime_remaining(campaign, 2, sent_at, "America/Los_Angeles", "DE")
    # Step 3 is two days later: Thanksgiving for an American, a working day for a German.
    assert us[3] == datetime(2026, 11, 27, 9, 0, tzinfo=LA).astimezone(UTC)
    assert de[3] == datetime(2026, 11, 26, 9, 0, tzinfo=LA).astimezone(UTC)
    table = Timetable.of(campaign)
    assert table.retime_remaining(2, sent_at, "America/Los_Angeles", "US") == us


def test_due_times_function_passes_zone_and_country_through() -> None:
    campaign = _with_holidays("subscriber")
    enrolled = datetime(2026, 11, 24, 8, 0, tzinfo=LA)  # day 2 is Thanksgiving
    us = due_times(campaign, enrolled, "America/New_York", "US")
    de = due_times(campaign, enrolled, "America/New_York", "DE")
    assert us[1] == datetime(2026, 11, 27, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    assert de[1] == datetime(2026, 11, 26, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    assert due_times(campaign, enrolled, None, "US")[1] == datetime(2026, 11, 27, 9, 0, tzinfo=LA)


def test_steps_are_found_by_identity_and_a_step_no_file_has_is_none() -> None:
    # Delivery rows are matched to the campaign files by step identity (a late send retimes
    # the rest, a consent change finds the steps reached): each identity gives its own
    # position, the first step's too, and a step no file has any more gives None.
    assert [TABLE.number_of(s.id) for s in CAMPAIGN.steps] == [1, 2, 3, 4, 5, 6]
    assert TABLE.number_of("neuroplasticity") == 3
    assert TABLE.number_of("a-step-since-deleted") is None
    assert TABLE.number_of("") is None


def test_a_timetable_rebuilt_from_stored_rules_gives_the_same_due_times() -> None:
    # `dripline plan` rebuilds the last applied timetable from its stored rules.
    rules = [(s.number, s.day, s.send_immediately, s.id) for s in CAMPAIGN.steps]
    rebuilt = Timetable.from_rules(CAMPAIGN.schedule, rules)
    assert rebuilt == TABLE
    enrolled = datetime(2026, 3, 5, 20, 0, tzinfo=LA)
    assert rebuilt.due_times(enrolled, "Europe/London") == TABLE.due_times(
        enrolled, "Europe/London"
    )
    assert rebuilt.number_of("other-therapies") == 6
