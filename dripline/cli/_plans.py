"""What plan, apply, run --apply and the enrolling commands share: states and baselines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from ..campaign import Campaign, campaign_slugs
from ..errors import DriplineError
from ..ledger import campaign_commit
from ..plan import CampaignPlan, apply_campaign, campaign_state, ensure_baseline, plan_campaign
from ..settings import Settings
from ._store import load_campaign_by_slug

__all__ = ["apply_all", "plans_for", "record_baseline"]


def record_baseline(settings: Settings, engine: Engine, campaign: Campaign) -> list[str]:
    """After enrolling: record what the campaign looks like now, unless a revision is live.

    A campaign that does not render records nothing: enrolling does not need it, and
    `dripline plan` then compares with the deliveries alone. Returns what the enrolling
    command should warn of: the layout's error, or each step that cannot render (a
    campaign with no layout file yet is not one: nothing is sent before there is).
    """
    try:
        state = _state(settings, campaign)
    except DriplineError as err:
        layout = settings.templates_dir / f"{campaign.layout}.html"
        return [f"{err} (its messages wait until it is fixed)"] if layout.exists() else []
    ensure_baseline(
        engine, campaign.slug, state, datetime.now(UTC), git_commit=campaign_commit(settings.root)
    )
    return [
        f"step {step['position']}: {step['text'][1:-1]} (dripline check {campaign.slug})"
        for step in state["steps"]
        if step["text"].startswith("(cannot render: ")
    ]


def _state(settings: Settings, campaign: Campaign) -> dict[str, Any]:
    """The campaign as its files are now; each step renders within the render budget."""
    return campaign_state(
        campaign, settings.templates_dir, settings.base_url, render_budget=settings.render_budget
    )


def _slugs(settings: Settings, slug: str | None) -> list[str]:
    return [slug] if slug else campaign_slugs(settings.campaigns_dir)


def plans_for(
    settings: Settings, engine: Engine, slug: str | None, now: datetime
) -> list[CampaignPlan]:
    """The plan of SLUG (or of every campaign), read only."""
    plans = []
    for name in _slugs(settings, slug):
        state = _state(settings, load_campaign_by_slug(settings, name))
        plans.append(plan_campaign(engine, name, state, now))
    return plans


def apply_all(
    settings: Settings, engine: Engine, slug: str | None, now: datetime
) -> list[CampaignPlan]:
    """Apply the pending plan of SLUG (or every campaign), each in its own transaction."""
    commit = campaign_commit(settings.root)
    applied = []
    for name in _slugs(settings, slug):
        state = _state(settings, load_campaign_by_slug(settings, name))
        applied.append(apply_campaign(engine, name, state, now, git_commit=commit))
    return applied
