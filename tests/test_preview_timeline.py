"""The preview's send dates follow the timetable rule (weekdays, order, DST)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dripline.campaign import load_campaign
from dripline.preview import plan_sends

REPO = Path(__file__).resolve().parent.parent
LA = ZoneInfo("America/Los_Angeles")


def ketamine():
    return load_campaign(REPO / "campaigns" / "ketamine-therapy")


def test_worked_example_of_the_timetable_issue() -> None:
    # Subscribed Thursday 2026-03-05 20:00 in Los Angeles; clocks change on 03-08.
    planned = plan_sends(ketamine(), datetime(2026, 3, 5, 20, 0, tzinfo=LA))
    due = [p.due for p in planned]
    assert due[0] == datetime(2026, 3, 5, 20, 0, tzinfo=LA)  # step 1: at once
    assert [d.strftime("%a %m-%d %H:%M %Z") for d in due[1:]] == [
        "Mon 03-09 09:00 PDT",  # day 2 is a Saturday
        "Tue 03-10 09:00 PDT",
        "Wed 03-11 09:00 PDT",
        "Fri 03-13 09:00 PDT",
        "Mon 03-16 09:00 PDT",
    ]
    assert [p.shifted_days for p in planned] == [0, 2, 1, 0, 0, 1]
    assert [p.moved_because for p in planned] == [
        "",
        "no emails go out on Saturdays",
        "each email goes out on a later day than the one before",
        "",
        "",
        "no emails go out on Sundays",
    ]


def test_steps_stay_in_order_on_distinct_days() -> None:
    campaign = ketamine()
    # Every step one day apart from a Friday: the weekend pushes several onto Monday,
    # the rule spreads them over the following days instead.
    steps = tuple(replace(s, day=i) for i, s in enumerate(campaign.steps))
    planned = plan_sends(replace(campaign, steps=steps), datetime(2026, 3, 6, 8, 0, tzinfo=LA))
    days = [p.due.date() for p in planned]
    assert days == sorted(set(days))
    assert all(d.weekday() < 5 for d in days[1:])


def test_a_day_zero_step_after_send_time_goes_out_the_next_allowed_day() -> None:
    campaign = ketamine()
    first = replace(campaign.steps[0], send_immediately=False)
    campaign = replace(campaign, steps=(first, *campaign.steps[1:]))
    planned = plan_sends(campaign, datetime(2026, 3, 6, 10, 0, tzinfo=LA))  # a Friday, 10:00
    assert planned[0].due == datetime(2026, 3, 9, 9, 0, tzinfo=LA)


def test_send_time_and_weekdays_come_from_the_campaign_and_enrollment_is_converted() -> None:
    campaign = ketamine()
    schedule = replace(campaign.schedule, send_time=time(7, 30), weekdays=(1, 3))  # tue, thu
    planned = plan_sends(
        replace(campaign, schedule=schedule), datetime(2026, 11, 2, 12, 0, tzinfo=ZoneInfo("UTC"))
    )
    assert planned[0].due.tzinfo is not None
    assert planned[0].due.utcoffset() == LA.utcoffset(datetime(2026, 11, 2))
    for send in planned[1:]:
        assert send.due.weekday() in (1, 3)
        assert (send.due.hour, send.due.minute) == (7, 30)


def test_the_drawing_hatches_every_day_without_sends_and_places_each_step() -> None:
    import lxml.etree

    from dripline.preview import timeline_svg

    campaign = ketamine()
    schedule = replace(campaign.schedule, weekdays=(1, 3))  # Tuesdays and Thursdays only
    campaign = replace(campaign, schedule=schedule)
    planned = plan_sends(campaign, datetime(2026, 3, 2, 8, 0, tzinfo=LA))  # a Monday
    svg = lxml.etree.fromstring(str(timeline_svg(campaign, planned)).encode())
    ns = {"s": "http://www.w3.org/2000/svg"}
    steps = svg.findall(".//s:g", ns)
    assert [g.get("data-step") for g in steps] == ["1", "2", "3", "4", "5", "6"]
    hatched = [r.findtext("s:title", namespaces=ns) for r in svg.findall(".//s:rect", ns)]
    hatched = [t for t in hatched if t]
    first, last = planned[0].due.date(), planned[-1].due.date()
    days = (last - first).days + 1
    assert len(hatched) == days - sum(
        1
        for n in range(days)
        if (first.toordinal() + n) % 7 in (2, 4)  # ordinal%7: Tue=2, Thu=4
    )
    assert all(t.split()[0] not in ("Tue", "Thu") for t in hatched)
    # Each marker sits in the column of its due day, at its time of day.
    for group, send in zip(steps, planned, strict=True):
        x = float(group.find("s:circle", ns).get("cx"))
        column = (send.due.date() - first).days
        fraction = (send.due.hour * 60 + send.due.minute) / 1440
        assert x == pytest.approx(20 + (column + fraction) * 56, abs=0.1)
    assert "No sends on mon, wed, fri, sat, sun." in svg.findtext("s:desc", namespaces=ns)
