"""``dripline suppress list|add|remove|import FILE.csv|export``: the suppression list.

A suppressed address is never enrolled (import, sign-up, subscribe) or sent to (the
dispatcher cancels its pending deliveries) until it is removed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from ..store import (
    add_suppression,
    export_suppressions,
    import_suppressions,
    list_suppressions,
    remove_suppression,
)
from . import settings_from
from ._store import db_option, open_settings_store

__all__ = ["suppress_command"]


@click.group("suppress")
def suppress_command() -> None:
    """Addresses that are never enrolled or sent to again (until removed)."""


@suppress_command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@db_option
@click.pass_context
def list_command(ctx: click.Context, as_json: bool, database_url: str | None) -> None:
    """Every suppressed address with its reason and since when (UTC)."""
    engine = open_settings_store(settings_from(ctx, database_url=database_url), existing=True)
    try:
        entries = list_suppressions(engine)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps([e.as_json() for e in entries], indent=2))
        return
    for entry in entries:
        click.echo(
            f"{entry.email}\t{entry.created_at:%Y-%m-%d %H:%M}\t{entry.source}\t{entry.reason}"
        )
    click.echo(f"{len(entries)} suppressed address(es)", err=True)


@suppress_command.command("add")
@click.argument("email")
@click.option("--reason", required=True, help="Why (kept with the entry).")
@db_option
@click.pass_context
def add_command(ctx: click.Context, email: str, reason: str, database_url: str | None) -> None:
    """Suppress EMAIL; its pending deliveries are cancelled at their next claim."""
    engine = open_settings_store(settings_from(ctx, database_url=database_url))
    try:
        added = add_suppression(engine, email, reason, source="cli", now=datetime.now(UTC))
    finally:
        engine.dispose()
    click.echo(f"Suppressed {email}" if added else f"{email} was suppressed already (kept)")


@suppress_command.command("remove")
@click.argument("email")
@db_option
@click.pass_context
def remove_command(ctx: click.Context, email: str, database_url: str | None) -> None:
    """Take EMAIL off the list (it can be enrolled again; nothing is re-sent by itself)."""
    engine = open_settings_store(settings_from(ctx, database_url=database_url), existing=True)
    try:
        removed = remove_suppression(engine, email)
    finally:
        engine.dispose()
    if not removed:
        click.echo(f"Error: {email} is not suppressed", err=True)
        ctx.exit(1)
    click.echo(f"Removed {email} from the suppression list")


@suppress_command.command("import")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(path_type=Path))
@db_option
@click.pass_context
def import_command(ctx: click.Context, csv_file: Path, database_url: str | None) -> None:
    """Add every address of FILE.csv (columns: email, and optionally reason)."""
    engine = open_settings_store(settings_from(ctx, database_url=database_url))
    try:
        result = import_suppressions(engine, csv_file, now=datetime.now(UTC))
    finally:
        engine.dispose()
    problems = result.problems or []
    for line, message in problems:
        click.echo(f"Error: {csv_file}:{line}: {message}", err=True)
    click.echo(
        f"{csv_file}: {result.added} suppressed, {result.already} already on the list, "
        f"{len(problems)} invalid row(s) skipped"
    )
    if problems:
        ctx.exit(1)


@suppress_command.command("export")
@db_option
@click.pass_context
def export_command(ctx: click.Context, database_url: str | None) -> None:
    """Print the list as CSV (email, reason, source, created_at), as import reads it."""
    engine = open_settings_store(settings_from(ctx, database_url=database_url), existing=True)
    try:
        click.echo(export_suppressions(engine), nl=False)
    finally:
        engine.dispose()
