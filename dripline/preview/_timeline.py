"""The campaign timeline: when each step reaches a sample subscriber, drawn as inline SVG.

When (the timetable's rule, issue 3): a step is due on the enrollment day in the
campaign's time zone plus its ``day`` offset, at the campaign's send time, moved
forward to the next allowed weekday that is not a public holiday (``[schedule]
holidays``; a preview of ``"subscriber"`` uses ``holidays_default``); steps stay
in order on distinct local days;
a ``send = "immediately"`` step is due at the moment of enrollment. The times
come from :mod:`dripline.timetable` itself, so the preview shows exactly when
real deliveries would be due.

Drawn: days the campaign does not send on (weekends, usually, and public
holidays, named) are hatched columns, and a step the weekday rule pushed back
shows a dashed line from the day its offset names to the day it really goes out.
The drawing is a picture
(``role="img"``) with a text description; the inbox list next to it carries the
links, so nothing is reachable only by pointing at a circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from markupsafe import Markup, escape

from .._holidays import Region, holiday_name
from ..campaign import WEEKDAYS, Campaign, Step
from ..conditions import as_stored, step_applies
from ..errors import DriplineError
from ..timetable import Timetable

__all__ = ["PlannedSend", "SampleSteps", "plan_sends", "sample_steps", "timeline_svg"]


@dataclass(frozen=True)
class PlannedSend:
    """One step placed on the calendar of a sample enrollment."""

    step: Step
    due: datetime  # aware, in the campaign's time zone
    nominal_date: date  # enrollment date + day offset, before any weekday shift
    moved_because: str = ""  # why the due date is later than the nominal one, for people
    nominal_holiday: str = ""  # the public holiday on the nominal date, if any

    @property
    def moved_from(self) -> str:
        """What the step moved away from: the holiday's name, else the weekday's."""
        return self.nominal_holiday or f"{self.nominal_date:%A}"

    @property
    def shifted_days(self) -> int:
        """How many days the weekday and ordering rules pushed the step back."""
        return (self.due.date() - self.nominal_date).days


def _reason(
    campaign: Campaign,
    nominal: date,
    due: date,
    previous: date | None,
    holiday: str | None,
    region: Region | None,
) -> str:
    """Why the timetable put a step later than its ``day`` offset says, for people: every
    cause, so a step pushed past Christmas and New Year's Day says so rather than only
    "no emails go out on Mondays" for a move of a month."""
    if due == nominal:
        return ""
    reasons: list[str] = []
    if nominal.weekday() not in campaign.schedule.weekdays:
        reasons.append(f"no emails go out on {nominal:%A}s")
    elif holiday:
        reasons.append(f"no emails go out on public holidays ({holiday}, {nominal:%a %d %b})")
    if previous is not None and nominal <= previous:
        reasons.append("each email goes out on a later day than the one before")
    if not reasons:
        reasons.append("the send time had passed on the day of enrollment")
    # Holidays on otherwise allowed days between where the rules above put the step
    # and where it goes out: they pushed it on too.
    floor = max(nominal, previous or nominal)
    skipped = [
        f"{name} ({day:%a %d %b})"
        for offset in range(1, (due - floor).days)
        if (day := floor + timedelta(days=offset)).weekday() in campaign.schedule.weekdays
        and (name := holiday_name(region, day))
    ]
    if skipped:
        reasons.append(f"then public holidays: {', '.join(skipped)}")
    return "; ".join(reasons)


def plan_sends(campaign: Campaign, enrolled: datetime) -> list[PlannedSend]:
    """Due times of every step for a subscriber enrolled at ``enrolled`` (any aware time).

    The times come from :class:`dripline.timetable.Timetable`, the very rule that
    schedules real deliveries; only the explanations are worked out here.
    """
    zone = campaign.schedule.zone
    start = enrolled.astimezone(zone).date()
    table = Timetable.of(campaign)
    region = table.region_for(None)
    dues = table.due_times(enrolled, None)
    planned: list[PlannedSend] = []
    previous: date | None = None
    for step, due_utc in zip(campaign.steps, dues, strict=True):
        due = due_utc.astimezone(zone)
        nominal = start + timedelta(days=step.day)
        holiday = holiday_name(region, nominal)
        reason = (
            ""
            if step.send_immediately
            else _reason(campaign, nominal, due.date(), previous, holiday, region)
        )
        planned.append(PlannedSend(step, due, nominal, reason, holiday or ""))
        previous = due.date()
    return planned


# -- the drawing ------------------------------------------------------------------------

COLUMN = 56  # px per day
MARGIN = 20
HEIGHT = 170
AXIS_Y = 118
MARKER_Y = 62
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _x(start: date, when_day: date, fraction: float = 0.0) -> float:
    return MARGIN + ((when_day - start).days + fraction) * COLUMN


def _describe(campaign: Campaign, planned: list[PlannedSend], holidays: list[str]) -> str:
    parts = []
    for send in planned:
        when = send.due.strftime("%a %d %b %H:%M")
        note = f" (moved {send.shifted_days} day(s) from day {send.step.day}: {send.moved_because})"
        parts.append(f"step {send.step.number} {when}{note if send.shifted_days else ''}")
    skipped = [WEEKDAYS[d] for d in range(7) if d not in campaign.schedule.weekdays]
    no_send = f" No sends on {', '.join(skipped)}." if skipped else ""
    if holidays:
        no_send += f" No sends on public holidays: {'; '.join(holidays)}."
    return "; ".join(parts) + "." + no_send


def timeline_svg(campaign: Campaign, planned: list[PlannedSend]) -> Markup:
    """An ``<svg>`` element for ``planned`` (as returned by ``plan_sends``)."""
    start = planned[0].due.date() if planned else date.today()
    start = min([start, *(p.nominal_date for p in planned)])
    last = max([start, *(p.due.date() for p in planned)])
    days = (last - start).days + 1
    width = MARGIN * 2 + days * COLUMN
    zone = campaign.schedule.timezone
    region = Timetable.of(campaign).region_for(None)
    holidays = {
        day: name
        for offset in range(days)
        if (name := holiday_name(region, day := start + timedelta(days=offset)))
    }
    holiday_list = [f"{name} ({day:%a %d %b})" for day, name in holidays.items()]
    out: list[str] = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" role="img" '
        'aria-labelledby="timeline-title timeline-desc">',
        f'<title id="timeline-title">Send timeline in {escape(zone)}</title>',
        f'<desc id="timeline-desc">{escape(_describe(campaign, planned, holiday_list))}</desc>',
        '<defs><pattern id="skip-hatch" width="8" height="8" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="8" height="8" class="tl-skip-bg"/>'
        '<line x1="0" y1="0" x2="0" y2="8" class="tl-hatch"/></pattern></defs>',
    ]
    for offset in range(days):
        day = start + timedelta(days=offset)
        x = _x(start, day)
        holiday = holidays.get(day)
        allowed = day.weekday() in campaign.schedule.weekdays and holiday is None
        if not allowed:
            why = f"{escape(holiday)}, no sends" if holiday else "no sends"
            out.append(
                f'<rect class="tl-skip{" tl-holiday" if holiday else ""}" x="{x:.1f}" y="14" '
                f'width="{COLUMN}" height="{AXIS_Y - 14}" fill="url(#skip-hatch)"><title>'
                f"{_DAY_NAMES[day.weekday()]} {day:%d %b}: {why}</title></rect>"
            )
        out.append(
            f'<line class="tl-tick" x1="{x:.1f}" y1="{AXIS_Y}" x2="{x:.1f}" y2="{AXIS_Y + 6}"/>'
        )
        label_class = "tl-day" if allowed else "tl-day tl-day-skip"
        out.append(
            f'<text class="{label_class}" x="{x + COLUMN / 2:.1f}" y="{AXIS_Y + 22}" '
            f'text-anchor="middle">{_DAY_NAMES[day.weekday()]}</text>'
            f'<text class="{label_class}" x="{x + COLUMN / 2:.1f}" y="{AXIS_Y + 38}" '
            f'text-anchor="middle">{day:%d %b}</text>'
        )
    out.append(
        f'<line class="tl-axis" x1="{MARGIN}" y1="{AXIS_Y}" x2="{width - MARGIN}" y2="{AXIS_Y}"/>'
    )
    for send in planned:
        due = send.due
        fraction = (due.hour * 60 + due.minute) / (24 * 60)
        x = _x(start, due.date(), fraction)
        if send.shifted_days:
            nominal_x = _x(start, send.nominal_date, fraction)
            out.append(
                f'<line class="tl-shift" x1="{nominal_x:.1f}" y1="{MARKER_Y}" '
                f'x2="{x - 12:.1f}" y2="{MARKER_Y}"/>'
                f'<circle class="tl-nominal" cx="{nominal_x:.1f}" cy="{MARKER_Y}" r="5"/>'
            )
        subject = escape(send.step.subject)
        out.append(
            f'<g class="tl-step" data-step="{send.step.number}">'
            f"<title>Step {send.step.number}: {subject} ({due:%a %d %b %H:%M})</title>"
            f'<line class="tl-stem" x1="{x:.1f}" y1="{MARKER_Y + 11}" x2="{x:.1f}" '
            f'y2="{AXIS_Y}"/>'
            f'<circle class="tl-marker" cx="{x:.1f}" cy="{MARKER_Y}" r="11"/>'
            f'<text class="tl-number" x="{x:.1f}" y="{MARKER_Y + 4}" '
            f'text-anchor="middle">{send.step.number}</text>'
            f'<text class="tl-time" x="{x:.1f}" y="{MARKER_Y - 18}" '
            f'text-anchor="middle">{due:%H:%M}</text></g>'
        )
    out.append("</svg>")
    return Markup("".join(out))


@dataclass(frozen=True)
class SampleSteps:
    """Which steps one sample subscriber would get: per step "gets", "skipped" or an error."""

    label: str
    email: str
    outcomes: tuple[tuple[Step, str], ...]


def sample_steps(campaign: Campaign, samples: list) -> list[SampleSteps]:
    """Each sample subscriber's steps, their ``when`` expressions evaluated (conditions)."""
    found = []
    for sample in samples:
        recipient = sample.recipient
        fields = as_stored(recipient.fields)  # as send time sees a stored subscriber
        outcomes = []
        for step in campaign.steps:
            try:
                verdict = "gets" if step_applies(step, recipient.email, fields) else "skipped"
            except DriplineError as err:
                verdict = f"error: {err.message}"
            outcomes.append((step, verdict))
        found.append(SampleSteps(sample.label, recipient.email, tuple(outcomes)))
    return found
