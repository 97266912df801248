"""One campaign's results, from the store and the campaign's files."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import Engine

from ..campaign import Campaign
from ..errors import DriplineError
from ..store import StoredWinner, experiment_winners
from ..store._results_report import CampaignResults, campaign_results
from ._experiment import experiment_json

__all__ = [
    "AMBIGUOUS_NOTE",
    "MACHINE_NOTE",
    "OPENS_NOTE",
    "UNCLASSIFIED_NOTE",
    "CampaignReport",
    "campaign_report",
    "parse_since",
]

OPENS_NOTE = (
    "Opens are unreliable: privacy proxies (Apple Mail, Gmail) load every image, and "
    "many people read with images off."
)
MACHINE_NOTE = (
    "Machine clicks: link scanners, mail-security proxies and clicks within seconds of "
    "delivery. They are not counted as people's clicks."
)
UNCLASSIFIED_NOTE = (
    "Unclassified: people's clicks made only by user agents no list knows, or by a "
    "headless browser. They are counted as people's clicks and shown apart; a request "
    "without a user agent is a machine's."
)
AMBIGUOUS_NOTE = (
    "Ambiguous (maybe sent): the relay may or may not have accepted these messages (the "
    "sender was stopped or cut off after the data went); they are never re-sent on their "
    "own and are in no other column."
)


def parse_since(value: str | None) -> datetime | None:
    """``--since DATE`` (YYYY-MM-DD, or an ISO 8601 instant) as aware UTC midnight/instant."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DriplineError(f"--since: not a date: {value!r} (e.g. 2026-03-01)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass
class CampaignReport:
    campaign: Campaign
    results: CampaignResults
    generated_at: datetime
    winners: dict[str, StoredWinner] = field(default_factory=dict)  # A/B winners by step

    def as_json(self) -> dict[str, object]:
        results, tracking = self.results, self.campaign.tracking
        hours = results.conversion_hours
        steps = []
        for step in results.steps:
            steps.append(
                {
                    "step": step.step,
                    "number": step.number,
                    "subject": step.subject,
                    "sent": step.sent,
                    "skipped": step.skipped,
                    "delivered": step.delivered,
                    "bounces": step.bounces,
                    "complaints": step.complaints,
                    "clicks": step.clicks,
                    "click_rate": round(step.click_rate, 4),
                    "machine_clicks": step.machine_clicks,
                    "opens": step.opens if tracking.opens else None,
                    "unsubscribes": step.unsubscribes,
                    "conversions": step.conversions,
                    "experiment": experiment_json(self.campaign, step, self.winners.get(step.step)),
                    "ambiguous": step.ambiguous,
                    "unclassified_clicks": step.unclassified_clicks,
                }
            )
        return {
            "campaign": self.campaign.slug,
            "name": self.campaign.name,
            "since": results.since.isoformat() if results.since else None,
            "generated_at": self.generated_at.isoformat(),
            "tracking": {"clicks": tracking.clicks, "opens": tracking.opens},
            "goal": self.campaign.goal_event,
            "steps": steps,
            "totals": {
                "enrolled": results.enrolled,
                "sent": results.total("sent"),
                "skipped": results.total("skipped"),
                "delivered": results.total("delivered"),
                "clicks": results.total("clicks"),
                "machine_clicks": results.total("machine_clicks"),
                "unsubscribes": results.total("unsubscribes"),
                "bounces": results.total("bounces"),
                "conversions": results.conversions,
                "conversion_rate": round(results.conversion_rate, 4),
                "ambiguous": results.total("ambiguous"),
                "unclassified_clicks": results.total("unclassified_clicks"),
                "opens": results.total("opens") if tracking.opens else None,
                "converted_before_sending": results.converted_before_sending,
            },
            "sends_per_day": [
                {"date": day.isoformat(), "sent": count} for day, count in results.sends_per_day
            ],
            "time_to_conversion": {
                "conversions": len(hours),
                "median_hours": round(statistics.median(hours), 2) if hours else None,
                "mean_hours": round(statistics.fmean(hours), 2) if hours else None,
            },
            "notes": {
                "opens": OPENS_NOTE,
                "machine_clicks": MACHINE_NOTE,
                "ambiguous": AMBIGUOUS_NOTE,
                "unclassified_clicks": UNCLASSIFIED_NOTE,
            },
        }


def campaign_report(
    engine: Engine,
    campaign: Campaign,
    *,
    since: datetime | None = None,
    now: datetime | None = None,
) -> CampaignReport:
    """The campaign's results from ``engine`` (messages sent from ``since`` on, if given)."""
    steps = [(step.id, step.subject) for step in campaign.steps]
    results = campaign_results(engine, campaign.slug, steps, since=since)
    generated = (now or datetime.now(UTC)).replace(microsecond=0)
    return CampaignReport(campaign, results, generated, experiment_winners(engine, campaign.slug))
