"""What the store commands share: the ``--db`` option, opening the store, finding a campaign."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from sqlalchemy import Engine

from ..campaign import Campaign, campaign_slugs, load_campaign
from ..errors import CampaignError
from ..settings import Settings
from ..store import open_store

__all__ = ["db_option", "load_campaign_by_slug", "open_settings_store"]

F = TypeVar("F", bound=Callable[..., Any])


def db_option(func: F) -> F:
    """``--db URL``: any SQLAlchemy URL (default: DRIPLINE_DATABASE_URL, else dripline.db)."""
    return click.option(
        "--db",
        "database_url",
        default=None,
        metavar="URL",
        help="Database URL (default: DRIPLINE_DATABASE_URL, else dripline.db in the project).",
    )(func)


def open_settings_store(settings: Settings) -> Engine:
    """The configured store, migrated to the current schema on first use."""
    return open_store(settings.effective_database_url, campaigns_dir=settings.campaigns_dir)


def load_campaign_by_slug(settings: Settings, slug: str) -> Campaign:
    folder = settings.campaigns_dir / slug
    if not (folder / "campaign.toml").is_file():
        known = ", ".join(campaign_slugs(settings.campaigns_dir)) or "none"
        raise CampaignError(
            f"no campaign {slug!r} under {settings.campaigns_dir} (campaigns: {known})"
        )
    return load_campaign(folder)
