"""``dripline status [SLUG] [--json]``: who is enrolled and where every step stands."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from ..store import DELIVERY_STATUSES, campaign_status
from . import settings_from
from ._store import db_option, load_campaign_by_slug, open_settings_store

__all__ = ["status_command"]


@click.command("status")
@click.argument("slug", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@db_option
@click.pass_context
def status_command(
    ctx: click.Context, slug: str | None, as_json: bool, database_url: str | None
) -> None:
    """Counts of subscribers and of deliveries per step and status (all campaigns by default)."""
    settings = settings_from(ctx, database_url=database_url)
    if slug is not None:
        load_campaign_by_slug(settings, slug)  # a typo is an error, not an empty report
    engine = open_settings_store(settings, existing=True)
    try:
        status = campaign_status(engine, slug)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(status.as_json(), indent=2))
        return
    console = Console()
    console.print(
        f"{slug or 'all campaigns'}: {status.enrolled} enrolled, "
        f"{status.unsubscribed} unsubscribed, {status.bounced} bounced"
    )
    table = Table()
    table.add_column("step", justify="right")
    for name in DELIVERY_STATUSES:
        table.add_column(name, justify="right")
    for step in status.steps:
        table.add_row(str(step.step), *(str(step.counts[name]) for name in DELIVERY_STATUSES))
    console.print(table)
    stuck = sum(step.counts["sending"] for step in status.steps)
    if stuck:
        # Rows stay in 'sending' only while a dispatcher is mid-send, or after a crash.
        console.print(
            f"{stuck} delivery(ies) in 'sending': if no dispatcher is running, a crash "
            "interrupted them; they are not re-sent automatically (at most once per step)."
        )
    unclear = sum(step.counts["ambiguous"] for step in status.steps)
    if unclear:
        console.print(
            f"{unclear} delivery(ies) 'ambiguous': the server may or may not have accepted "
            "them; check its logs before re-sending by hand."
        )
