"""``dripline plan [SLUG] [--json] [--exit-code]`` and ``dripline apply [SLUG] [--yes]``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from . import settings_from
from ._plans import apply_all, plans_for
from ._store import db_option, open_settings_store
from .run import parse_now

__all__ = ["apply_command", "plan_command"]


@click.command("plan")
@click.argument("slug", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option(
    "--exit-code", is_flag=True, help="Exit 2 when changes are pending (like git diff --exit-code)."
)
@click.option(
    "--now",
    "now_text",
    metavar="ISO8601",
    help="Act as if the clock were at this instant (due times before it are due now).",
)
@db_option
@click.pass_context
def plan_command(
    ctx: click.Context,
    slug: str | None,
    as_json: bool,
    exit_code: bool,
    now_text: str | None,
    database_url: str | None,
) -> None:
    """Show what the campaign files would change for people already in them."""
    settings = settings_from(ctx, database_url=database_url)
    engine = open_settings_store(settings, existing=True)  # reads only: never creates a file
    try:
        plans = plans_for(settings, engine, slug, parse_now(now_text) or datetime.now(UTC))
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps([p.as_json() for p in plans], indent=2))
    else:
        for plan in plans:
            click.echo("\n".join(plan.lines()))
    if exit_code and any(p.changes for p in plans):
        ctx.exit(2)


@click.command("apply")
@click.argument("slug", required=False)
@click.option("--yes", is_flag=True, help="Apply without asking.")
@click.option(
    "--now",
    "now_text",
    metavar="ISO8601",
    help="Act as if the clock were at this instant (due times before it are due now).",
)
@db_option
@click.pass_context
def apply_command(
    ctx: click.Context, slug: str | None, yes: bool, now_text: str | None, database_url: str | None
) -> None:
    """Carry out the plan (one transaction per campaign) and record the revision applied."""
    settings = settings_from(ctx, database_url=database_url)
    now = parse_now(now_text) or datetime.now(UTC)
    engine = open_settings_store(settings, existing=True)
    try:
        plans = plans_for(settings, engine, slug, now)
        for plan in plans:
            click.echo("\n".join(plan.lines()))
        pending = [p.campaign for p in plans if p.changes]
        if not pending:
            return
        if not yes and not click.confirm(f"Apply to {', '.join(pending)}?", default=False):
            click.echo("Nothing applied.")
            ctx.exit(1)
        for name in pending:
            (done,) = apply_all(settings, engine, name, now)
            click.echo(f"{name}: applied ({done.summary()})")
    finally:
        engine.dispose()
