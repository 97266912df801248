"""``dripline event EMAIL NAME [--at ISO8601] [--json-data '{...}'] [--id ID] [--json]``:
record a goal event (it ends the sequences whose ``[goal] event`` it is)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from ..goals import parse_event_data, record_goal_event
from . import settings_from
from ._store import db_option, open_settings_store
from .run import parse_now

__all__ = ["event_command"]


@click.command("event")
@click.argument("email")
@click.argument("name")
@click.option("--at", "at_text", metavar="ISO8601", help="When it happened (default: now).")
@click.option("--json-data", "json_data", metavar="JSON", help="Extra data, a JSON object.")
@click.option("--id", "external_id", metavar="ID", help="Your id for it: recorded once only.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@db_option
@click.pass_context
def event_command(
    ctx: click.Context,
    email: str,
    name: str,
    at_text: str | None,
    json_data: str | None,
    external_id: str | None,
    as_json: bool,
    database_url: str | None,
) -> None:
    """Record event NAME for EMAIL; campaigns with it as their goal stop and count it."""
    settings = settings_from(ctx, database_url=database_url)
    at = parse_now(at_text, "--at")
    data = parse_event_data(json_data)
    engine = open_settings_store(settings)
    try:
        recorded = record_goal_event(
            engine,
            settings.campaigns_dir,
            email,
            name,
            at=at,
            now=datetime.now(UTC),
            data=data,
            external_id=external_id,
            source="cli",
        )
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(recorded.as_json(), indent=2))
        return
    if recorded.duplicate:
        click.echo(f"Event {external_id!r} was recorded before; nothing changed")
        return
    click.echo(f"Recorded {name} for {email}")
    for campaign in recorded.converted:
        click.echo(f"  {campaign}: goal reached (converted)")
    if recorded.converted:
        click.echo(f"  {recorded.cancelled} pending email(s) cancelled")
