"""When each step of a campaign would reach a sample subscriber enrolled "now".

The rule is the timetable's (issue 3): a step is due on the enrollment day in the
campaign's time zone plus its ``day`` offset, at the campaign's send time, moved
forward to the next allowed weekday; steps stay in order on distinct local days;
a ``send = "immediately"`` step is due at the moment of enrollment. The preview
only draws these dates, so plain ``zoneinfo`` arithmetic is enough: combining a
local date with a wall-clock time in the zone keeps 09:00 at 09:00 across a
daylight-saving change, which is what the timetable's ``CronTrigger`` does too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ..campaign import Campaign, Step

__all__ = ["PlannedSend", "plan_sends"]


@dataclass(frozen=True)
class PlannedSend:
    """One step placed on the calendar of a sample enrollment."""

    step: Step
    due: datetime  # aware, in the campaign's time zone
    nominal_date: date  # enrollment date + day offset, before any weekday shift
    moved_because: str = ""  # why the due date is later than the nominal one, for people

    @property
    def shifted_days(self) -> int:
        """How many days the weekday and ordering rules pushed the step back."""
        return (self.due.date() - self.nominal_date).days


def _local_at(day: date, campaign: Campaign) -> datetime:
    schedule = campaign.schedule
    wall = datetime.combine(day, schedule.send_time, tzinfo=schedule.zone)
    # A wall time that does not exist (skipped by a spring-forward change) is normalised
    # through UTC, as a real clock would read it.
    return wall.astimezone(UTC).astimezone(schedule.zone)


def plan_sends(campaign: Campaign, enrolled: datetime) -> list[PlannedSend]:
    """Due times of every step for a subscriber enrolled at ``enrolled`` (any aware time)."""
    schedule = campaign.schedule
    enrolled_local = enrolled.astimezone(schedule.zone)
    start = enrolled_local.date()
    planned: list[PlannedSend] = []
    previous_day: date | None = None
    for step in campaign.steps:
        nominal = start + timedelta(days=step.day)
        reason = ""
        if step.send_immediately:
            due = enrolled_local
        else:
            day = nominal
            # A day-0 step whose send time has already passed today goes out on the next
            # allowed day rather than "in the past".
            if _local_at(day, campaign) < enrolled_local:
                day += timedelta(days=1)
                reason = "the send time had passed on the day of enrollment"
            elif nominal.weekday() not in schedule.weekdays:
                reason = f"no emails go out on {nominal:%A}s"
            elif previous_day is not None and nominal <= previous_day:
                reason = "each email goes out on a later day than the one before"
            while day.weekday() not in schedule.weekdays or (
                previous_day is not None and day <= previous_day
            ):
                day += timedelta(days=1)
            due = _local_at(day, campaign)
        planned.append(PlannedSend(step, due, nominal, reason if due.date() != nominal else ""))
        previous_day = due.date()
    return planned
