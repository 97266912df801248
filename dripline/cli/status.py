"""``dripline status [SLUG] [--json]``: who is enrolled and where every step stands."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.table import Table

from ..store import (
    DELIVERY_STATUSES,
    bounce_figures,
    campaign_status,
    expire_leases,
    parse_moment,
)
from . import settings_from
from ._store import db_option, load_campaign_by_slug, open_settings_store

__all__ = ["status_command"]


@click.command("status")
@click.argument("slug", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--now",
    "now_text",
    default=None,
    metavar="ISO",
    help="End of the 30-day bounce and complaint window (default: now; UTC if no offset).",
)
@db_option
@click.pass_context
def status_command(
    ctx: click.Context,
    slug: str | None,
    as_json: bool,
    now_text: str | None,
    database_url: str | None,
) -> None:
    """Counts of subscribers and of deliveries per step and status (all campaigns by default)."""
    settings = settings_from(ctx, database_url=database_url)
    if slug is not None:
        load_campaign_by_slug(settings, slug)  # a typo is an error, not an empty report
    engine = open_settings_store(settings)
    try:
        # A worker that died is noticed by whoever looks next: its claims are handed back.
        expire_leases(engine)
        status = campaign_status(engine, slug)
        now = parse_moment(now_text, ZoneInfo("UTC")) if now_text else datetime.now(UTC)
        figures = bounce_figures(engine, slug, now=now)
    finally:
        engine.dispose()
    if as_json:
        report = status.as_json()
        for step in report["steps"]:  # type: ignore[attr-defined]
            step["bounces"], step["complaints"] = figures.per_step.get(step["step"], (0, 0))
        report["last_30_days"] = figures.as_json()
        click.echo(json.dumps(report, indent=2))
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
    table.add_column("bounces", justify="right")
    table.add_column("complaints", justify="right")
    for step in status.steps:
        bounces, complaints = figures.per_step.get(step.step, (0, 0))
        table.add_row(
            str(step.step),
            *(str(step.counts[name]) for name in DELIVERY_STATUSES),
            str(bounces),
            str(complaints),
        )
    console.print(table)
    click.echo(
        f"last {figures.window_days} days: {figures.sent} sent, "
        f"{figures.hard_bounces} hard bounce(s) ({figures.bounce_rate:.2%}), "
        f"{figures.complaints} complaint(s) ({figures.complaint_rate:.2%})"
    )
    for warning in figures.warnings():
        click.echo(f"Warning: {warning}")
    unclear = sum(step.counts["ambiguous"] for step in status.steps)
    if unclear:
        console.print(
            f"{unclear} delivery(ies) 'ambiguous': the relay may or may not have accepted "
            "them (a connection lost after the data, or a worker that died while sending). "
            "Check its logs; `dripline requeue --ambiguous` sends them again (at least once)."
        )
