"""A campaign's schedule and content as one JSON-able value: what a revision records.

The state is what `dripline plan` compares: the schedule, and per step its identity,
position, timing and the rendering for the first sample subscriber (subject, plain
text, a digest of the HTML, so a layout change counts as a content change).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from ..campaign import Campaign, Schedule
from ..errors import DriplineError
from ..render import CampaignRenderer
from ..samples import load_samples
from ..timetable import Timetable
from ._renames import unnumbered

__all__ = ["campaign_state", "timetable_of"]

# Renderings in a state use a fixed clock, so only an edit changes them.
_RENDERED_AT = datetime(2000, 1, 1, tzinfo=UTC)


def campaign_state(
    campaign: Campaign,
    templates_dir: Path,
    base_url: str,
    *,
    render_budget: float | None = None,
) -> dict[str, Any]:
    """The state of ``campaign`` as its files are now (renders each step once, each render
    within ``render_budget`` seconds; a step past it is recorded as one that cannot render).

    Raises :class:`~dripline.errors.CampaignError` when the layout does not load.
    """
    renderer = CampaignRenderer(campaign, templates_dir, render_budget=render_budget)
    sample = load_samples(campaign, base_url)[0].recipient
    steps: list[dict[str, Any]] = []
    for step in campaign.steps:
        try:
            email = renderer.step(step.number).render(sample, now=_RENDERED_AT, message_id="<x@x>")
            subject, text = email.subject, email.text
            # The footer's "(N of M)" follows the numbering, which alone is no new content.
            html = unnumbered(email.html)
            html_digest = hashlib.sha256(html.encode()).hexdigest()
        except DriplineError as err:  # `dripline check` reports it; the plan still works
            subject, text, html_digest = step.subject, f"(cannot render: {err})", ""
        steps.append(
            {
                "id": step.id,
                "position": step.number,
                "file": step.path.name,
                "day": step.day,
                "immediately": step.send_immediately,
                "backfill": step.backfill,
                # Issue 18: who gets the step, and its A/B subjects (absent in older states).
                "when": step.when,
                "subjects": list(step.subjects),
                "subject": subject,
                "text": text,
                "html_digest": html_digest,
            }
        )
    schedule = campaign.schedule
    return {
        "schedule": {
            "timezone": schedule.timezone,
            "send_time": schedule.send_time.strftime("%H:%M"),
            "weekdays": list(schedule.weekdays),
            "holidays": schedule.holidays,
            "holidays_default": schedule.holidays_default,
        },
        "steps": steps,
    }


def timetable_of(state: dict[str, Any]) -> Timetable:
    """The timetable a state describes (the one its deliveries are timed by)."""
    raw = state["schedule"]
    hour, minute = (int(x) for x in raw["send_time"].split(":"))
    schedule = Schedule(
        raw["timezone"],
        time(hour, minute),
        tuple(raw["weekdays"]),
        raw.get("holidays"),
        raw.get("holidays_default"),
    )
    rules = [(s["position"], s["day"], s["immediately"], s["id"]) for s in state["steps"]]
    return Timetable.from_rules(schedule, rules)
