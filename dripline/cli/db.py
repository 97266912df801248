"""``dripline db upgrade``: bring the database schema up to date (also done on first use)."""

from __future__ import annotations

import click

from ..settings import redact_url
from ..store import make_engine, upgrade
from . import settings_from
from ._store import db_option

__all__ = ["db_command"]


@click.group("db")
def db_command() -> None:
    """Manage the subscriber database."""


@db_command.command("upgrade")
@db_option
@click.pass_context
def upgrade_command(ctx: click.Context, database_url: str | None) -> None:
    """Apply the schema migrations that the database does not have yet."""
    settings = settings_from(ctx, database_url=database_url)
    url = settings.effective_database_url
    engine = make_engine(url)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    where = redact_url(url)
    if before == after:
        click.echo(f"{where}: schema is current (revision {after})")
    else:
        click.echo(f"{where}: upgraded from {before or 'empty'} to revision {after}")
