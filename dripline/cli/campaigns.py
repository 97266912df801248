"""``dripline campaigns``: every campaign with its steps, days and subjects."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..campaign import campaign_slugs, load_campaign
from ..errors import DriplineError
from . import settings_from

__all__ = ["campaigns_command"]


@click.command("campaigns")
@click.pass_context
def campaigns_command(ctx: click.Context) -> None:
    """List campaigns with their steps, days and subjects."""
    settings = settings_from(ctx)
    console = Console()
    slugs = campaign_slugs(settings.campaigns_dir)
    if not slugs:
        raise DriplineError(f"no campaigns under {settings.campaigns_dir}")
    broken = 0
    for slug in slugs:
        try:
            campaign = load_campaign(settings.campaigns_dir / slug)
        except DriplineError as err:
            # One broken campaign must not hide the others.
            broken += 1
            click.echo(f"Error: {err}", err=True)
            continue
        table = Table(title=f"{campaign.slug}: {campaign.name}", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("day", justify="right")
        table.add_column("when")
        table.add_column("subject")
        when = f"{campaign.schedule.send_time:%H:%M} {campaign.schedule.timezone}"
        for step in campaign.steps:
            table.add_row(
                str(step.number),
                str(step.day),
                "immediately" if step.send_immediately else when,
                step.subject,
            )
        console.print(table)
    if broken:
        ctx.exit(1)
