"""``dripline timeline SLUG --email EMAIL [--json]``: one subscriber's steps, when, and status."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from ..experiments import choose_variant
from ..store import subscriber_timeline
from ..timetable import Timetable
from . import settings_from
from ._store import db_option, load_campaign_by_slug, open_settings_store

__all__ = ["timeline_command"]


@click.command("timeline")
@click.argument("slug")
@click.option("--email", required=True, help="The subscriber's address.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@db_option
@click.pass_context
def timeline_command(
    ctx: click.Context, slug: str, email: str, as_json: bool, database_url: str | None
) -> None:
    """Show each step's subject, due time (local and UTC) and status for one subscriber.

    Sent rows show the subject from the ledger (as the subscriber got it); scheduled
    rows show the campaign files' subject for that step identity (for an A/B step, the
    subscriber's own variant).
    """
    settings = settings_from(ctx, database_url=database_url)
    campaign = load_campaign_by_slug(settings, slug)
    table = Timetable.of(campaign)
    engine = open_settings_store(settings, existing=True)
    try:
        entries = subscriber_timeline(engine, slug, email)
    finally:
        engine.dispose()
    rows = []
    for entry in entries:
        zone = table.zone_for(entry.timezone)
        step = campaign.step_by_id(entry.step_id)
        if entry.subject is not None:
            subject = entry.subject  # the ledger: what this subscriber actually got
        elif step is not None and step.subjects and entry.public_key:
            # An A/B step not sent yet: this person's own variant (a winner, once one is
            # declared, goes to everyone instead).
            subject = step.subjects[choose_variant(entry.public_key, step.id, len(step.subjects))]
        elif step is not None:
            subject = step.subject
        else:
            subject = "(step no longer in the campaign files)"
        rows.append(
            {
                "step": step.number if step is not None else entry.step,
                "id": entry.step_id,
                "subject": subject,
                "due_local": entry.due_at.astimezone(zone).isoformat(),
                "due_utc": entry.due_at.isoformat(),
                "status": entry.status,
                "zone": zone.key,
            }
        )
    if as_json:
        keys = ("step", "id", "subject", "due_local", "due_utc", "status")
        click.echo(json.dumps([{k: r[k] for k in keys} for r in rows], indent=2))
        return
    out = Table(title=f"{email} in {slug}", title_justify="left")
    for column in ("#", "step", "subject", "due (local)", "due (UTC)", "status"):
        out.add_column(column, justify="right" if column == "#" else "left")
    for entry, row in zip(entries, rows, strict=True):
        local = entry.due_at.astimezone(table.zone_for(entry.timezone))
        out.add_row(
            str(row["step"]),
            row["id"],
            row["subject"],
            f"{local:%a %Y-%m-%d %H:%M %Z}",
            f"{entry.due_at:%Y-%m-%d %H:%M}",
            row["status"],
        )
    Console().print(out)
