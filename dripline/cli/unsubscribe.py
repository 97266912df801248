"""``dripline unsubscribe EMAIL [--campaign SLUG]``: stop all (or one campaign's) mail now."""

from __future__ import annotations

import click

from ..store import unsubscribe
from . import settings_from
from ._store import db_option, open_settings_store

__all__ = ["unsubscribe_command"]


@click.command("unsubscribe")
@click.argument("email")
@click.option("--campaign", "slug", default=None, help="Only this campaign (default: all mail).")
@db_option
@click.pass_context
def unsubscribe_command(
    ctx: click.Context, email: str, slug: str | None, database_url: str | None
) -> None:
    """Unsubscribe EMAIL; its pending deliveries are cancelled in the same transaction."""
    settings = settings_from(ctx, database_url=database_url)
    engine = open_settings_store(settings)
    try:
        cancelled = unsubscribe(engine, email, slug)
    finally:
        engine.dispose()
    scope = f"from {slug}" if slug else "from all campaigns"
    click.echo(f"Unsubscribed {email} {scope}; {cancelled} pending email(s) cancelled")
