"""``dripline history EMAIL [--json]``: every message a subscriber was sent, across campaigns."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from ..errors import DriplineError
from ..store import subscriber_history
from . import settings_from
from ._store import db_option, open_settings_store

__all__ = ["history_command"]


@click.command("history")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@db_option
@click.pass_context
def history_command(
    ctx: click.Context, email: str, as_json: bool, database_url: str | None
) -> None:
    """What was sent to EMAIL (support, data-subject access requests), from the ledger."""
    settings = settings_from(ctx, database_url=database_url)
    try:
        engine = open_settings_store(settings, existing=True)  # reads only: never creates a file
        try:
            sent = subscriber_history(engine, email)
        finally:
            engine.dispose()
    except DriplineError:
        if as_json:
            click.echo("[]")  # stdout stays JSON for scripts; the error goes to stderr
        raise
    if as_json:
        click.echo(json.dumps([m.as_json() for m in sent], indent=2))
        return
    out = Table(title=f"sent to {email}", title_justify="left")
    for column in ("sent (UTC)", "campaign", "step", "subject", "variant", "status", "commit"):
        out.add_column(column)
    for m in sent:
        out.add_row(
            f"{m.sent_at:%Y-%m-%d %H:%M}" if m.sent_at else "",
            m.campaign,
            m.step_id,
            m.subject or "",
            str(m.subject_variant or ""),  # the A/B variant recorded in the ledger
            m.status,
            (m.campaign_commit or "")[:12]
            + ("-dirty" if (m.campaign_commit or "").endswith("-dirty") else ""),
        )
    Console(width=160).print(out)
    if not sent:
        click.echo("nothing sent")
