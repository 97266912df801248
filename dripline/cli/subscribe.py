"""``dripline subscribe EMAIL --campaign SLUG``: enroll one person and show their timetable."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ..store import (
    NewSubscriber,
    check_country,
    check_name,
    check_zone,
    normalize_email,
    parse_moment,
    subscribe,
    zone_warning,
)
from ..timetable import Timetable
from . import settings_from
from ._options import option_value
from ._plans import record_baseline
from ._store import db_option, load_campaign_by_slug, open_settings_store

__all__ = ["subscribe_command"]


@click.command("subscribe")
@click.argument("email")
@click.option("--campaign", "slug", required=True, help="Campaign slug (folder name).")
@click.option(
    "--name", default="", help='Full name ("Ada Lovelace", "Okafor, Chidi"); greets them.'
)
@click.option(
    "--first-name", default="", help="First name to greet them by (default: from --name)."
)
@click.option("--tz", "timezone", default=None, metavar="Area/City", help="IANA time zone.")
@click.option(
    "--country",
    default=None,
    metavar="CC",
    help='ISO 3166-1 alpha-2 country (for [schedule] holidays = "subscriber").',
)
@click.option(
    "--at",
    "subscribed_at",
    default=None,
    metavar="ISO8601",
    help="When they subscribed (default: now); without an offset it is local to --tz.",
)
@db_option
@click.pass_context
def subscribe_command(
    ctx: click.Context,
    email: str,
    slug: str,
    name: str,
    first_name: str,
    timezone: str | None,
    country: str | None,
    subscribed_at: str | None,
    database_url: str | None,
) -> None:
    """Subscribe EMAIL to a campaign; every step is scheduled at once."""
    settings = settings_from(ctx, database_url=database_url)
    campaign = load_campaign_by_slug(settings, slug)
    table = Timetable.of(campaign)
    with option_value("--tz"):
        zone_name = check_zone(timezone)
    warning = zone_warning(zone_name)
    if warning:
        click.echo(f"Warning: --tz: {warning}", err=True)
    zone = table.zone_for(zone_name)
    with option_value("--country"):
        code = check_country(country)
    address = normalize_email(email)  # its errors quote the address itself
    with option_value("--at"):
        moment = parse_moment(subscribed_at, zone) if subscribed_at else None
    person = NewSubscriber(
        email=address,
        name=check_name(name, "--name"),
        first_name=check_name(first_name, "--first-name"),
        timezone=zone_name,
        subscribed_at=moment,
        attributes={"country": code} if code else {},
    )
    engine = open_settings_store(settings)
    try:
        created, due = subscribe(engine, table, slug, person, now=datetime.now(UTC))
        record_baseline(settings, engine, campaign)
    finally:
        engine.dispose()
    verb = "Subscribed" if created else "Already subscribed:"
    click.echo(f"{verb} {person.email} to {slug} ({zone.key})")
    for step, when in zip(campaign.steps, due, strict=False):
        local = when.astimezone(zone)
        click.echo(f"  {step.number}  {local:%a %Y-%m-%d %H:%M %Z}  {step.subject}")
