"""``dripline requeue --ambiguous [SLUG] [--older-than DURATION]``: send ambiguous emails again.

An ``ambiguous`` delivery may or may not have reached the relay (the connection
was lost after its data, or its worker died while sending it). Requeueing is the
operator's choice of at-least-once over at-most-once: some of those subscribers
will get that step twice.
"""

from __future__ import annotations

from datetime import timedelta

import click

from .. import _durations as durations
from ..errors import DriplineError
from ..store import requeue_ambiguous
from . import settings_from
from ._store import db_option, load_campaign_by_slug, open_settings_store

__all__ = ["parse_duration", "requeue_command"]


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1d``, ``1h30m`` (at most 100 years); raises DriplineError
    otherwise."""
    return durations.parse_duration(text, "--older-than")


@click.command("requeue")
@click.argument("slug", required=False)
@click.option(
    "--ambiguous",
    is_flag=True,
    help="Requeue deliveries in 'ambiguous' (required: the only kind there is).",
)
@click.option(
    "--older-than",
    "older_than",
    metavar="DURATION",
    help="Only those whose attempt began at least this long ago (30m, 2h, 1d).",
)
@db_option
@click.pass_context
def requeue_command(
    ctx: click.Context,
    slug: str | None,
    ambiguous: bool,
    older_than: str | None,
    database_url: str | None,
) -> None:
    """Send 'ambiguous' deliveries again, now (at least once: some may arrive twice)."""
    if not ambiguous:
        raise DriplineError("say what to requeue: --ambiguous")
    age = parse_duration(older_than) if older_than is not None else None
    settings = settings_from(ctx, database_url=database_url)
    if slug is not None:
        load_campaign_by_slug(settings, slug)  # a typo is an error, not "0 requeued"
    engine = open_settings_store(settings, existing=True)
    try:
        count = requeue_ambiguous(engine, slug, older_than=age)
    finally:
        engine.dispose()
    scope = f" of {slug}" if slug else ""
    click.echo(
        f"Requeued {count} ambiguous delivery(ies){scope}: they go out on the next pass "
        "(a subscriber whose relay did accept the first try gets that step twice)"
    )
