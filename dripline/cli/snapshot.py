"""``dripline snapshot [SLUG]``: write each step's plain-text snapshot for review in git."""

from __future__ import annotations

import click

from ..campaign import campaign_slugs
from ..errors import DriplineError
from ..snapshots import write_snapshots
from . import settings_from
from ._store import load_campaign_by_slug

__all__ = ["snapshot_command"]


@click.command("snapshot")
@click.argument("slug", required=False)
@click.pass_context
def snapshot_command(ctx: click.Context, slug: str | None) -> None:
    """Write campaigns/SLUG/.snapshots/NN-id.txt (rendered for the first sample subscriber)."""
    settings = settings_from(ctx)
    slugs = [slug] if slug else campaign_slugs(settings.campaigns_dir)
    if not slugs:
        raise DriplineError(f"no campaigns under {settings.campaigns_dir}")
    for name in slugs:
        campaign = load_campaign_by_slug(settings, name)
        written = write_snapshots(
            campaign, settings.templates_dir, settings.base_url, settings.render_budget
        )
        folder = campaign.path / ".snapshots"
        click.echo(f"{name}: {len(written)} snapshot(s) in {folder}")
