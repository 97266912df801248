"""What the store commands share: the ``--db`` option, opening the store, finding a campaign."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import Engine, make_url
from sqlalchemy.exc import ArgumentError

from .._keys import closest
from ..campaign import Campaign, campaign_slugs, load_campaign
from ..errors import CampaignError
from ..settings import Settings
from ..store import StoreError, open_store

__all__ = ["campaign_folder", "db_option", "load_campaign_by_slug", "open_settings_store"]

F = TypeVar("F", bound=Callable[..., Any])


def db_option(func: F) -> F:
    """``--db URL|FILE``: a SQLAlchemy URL or a SQLite file path (see ``database_url_from``)."""
    return click.option(
        "--db",
        "database_url",
        default=None,
        metavar="URL|FILE",
        help="A SQLAlchemy URL or a SQLite file (default: DRIPLINE_DATABASE_URL, else "
        "dripline.db in the project).",
    )(func)


def _sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None for other databases, in-memory, or a bad URL)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # open_store reports it
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def open_settings_store(settings: Settings, *, existing: bool = False) -> Engine:
    """The configured store, migrated to the current schema on first use.

    With ``existing`` (commands that read, or change only what is there) a SQLite file
    that does not exist, or a database without dripline's tables, is an error rather than
    a new empty database. Raises :class:`StoreError` naming the file.
    """
    url = settings.effective_database_url
    path = _sqlite_file(url)
    if path is not None and path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise StoreError(f"{path} is not a dripline database: it is {kind}; --db names a file")
    if existing and path is not None and not path.exists():
        raise StoreError(
            f"no database at {path}: nothing was enrolled there yet (`dripline subscribe` "
            "and `dripline import` create it); use --db FILE for another one, e.g. "
            "--db demo/dripline.db after `dripline demo`"
        )
    return open_store(url, campaigns_dir=settings.campaigns_dir, existing=existing)


def campaign_folder(settings: Settings, slug: str) -> Path:
    """``campaigns/SLUG``; an unknown slug is an error listing the campaigns, closest first."""
    folder = settings.campaigns_dir / slug
    if (folder / "campaign.toml").exists():  # load_campaign says what is wrong with it
        return folder
    slugs = campaign_slugs(settings.campaigns_dir)
    if not slugs:
        raise CampaignError(f"no campaign {slug!r}: no campaigns under {settings.campaigns_dir}")
    match = closest(slug, slugs)
    hint = f"did you mean {match!r}? " if match else ""
    listed = ", ".join(slugs)
    where = settings.campaigns_dir
    raise CampaignError(f"no campaign {slug!r} under {where}; {hint}(campaigns: {listed})")


def load_campaign_by_slug(settings: Settings, slug: str) -> Campaign:
    return load_campaign(campaign_folder(settings, slug))
