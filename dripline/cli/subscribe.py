"""``dripline subscribe EMAIL --campaign SLUG``: enroll one person and show their timetable."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ..campaign import Campaign
from ..store import (
    NewSubscriber,
    TimelineEntry,
    check_country,
    check_name,
    check_zone,
    enrollment_outcome,
    normalize_email,
    parse_moment,
    subscribe,
    subscriber_timeline,
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
        warnings = record_baseline(settings, engine, campaign)
        if not created:  # what really will happen, not the timetable they started with
            entries = subscriber_timeline(engine, slug, str(person.email))
            state, converted_at = enrollment_outcome(engine, slug, str(person.email))
    finally:
        engine.dispose()
    for warning in warnings:
        click.echo(f"Warning: {warning}", err=True)
    if not created:
        _print_existing(campaign, entries, state, converted_at, str(person.email), table)
        return
    click.echo(f"Subscribed {person.email} to {slug} ({zone.key})")
    for step, when in zip(campaign.steps, due, strict=False):
        local = when.astimezone(zone)
        click.echo(f"  {step.number}  {local:%a %Y-%m-%d %H:%M %Z}  {step.subject}")


_WILL_SEND = ("scheduled", "claimed", "sending")


def _print_existing(
    campaign: Campaign,
    entries: list[TimelineEntry],
    state: str,
    converted_at: datetime | None,
    email: str,
    table: Timetable,
) -> None:
    """An enrollment already there: each step as it stands (sent, due, cancelled...), and
    whether anything more will be sent."""
    zone = table.zone_for(entries[0].timezone if entries else None)
    click.echo(f"Already subscribed: {email} to {campaign.slug} ({zone.key})")
    for entry in entries:
        step = campaign.step_by_id(entry.step_id)
        number = step.number if step is not None else entry.step
        subject = entry.subject or (step.subject if step is not None else entry.step_id)
        when = entry.sent_at if entry.status == "sent" and entry.sent_at else entry.due_at
        label = "due" if entry.status in _WILL_SEND else entry.status
        local = when.astimezone(zone)
        click.echo(f"  {number}  {label:<9}  {local:%a %Y-%m-%d %H:%M %Z}  {subject}")
    pending = sum(entry.status in _WILL_SEND for entry in entries)
    if converted_at is not None:
        local = converted_at.astimezone(zone)
        why = f"converted on {local:%a %Y-%m-%d %H:%M %Z} (goal {campaign.goal_event!r})"
    elif state == "unsubscribed":
        why = "unsubscribed from this campaign"
    else:
        why = state
    if pending == 0:
        click.echo(f"Nothing more will be sent: {why}.")
    elif converted_at is not None or state == "unsubscribed":
        click.echo(f"{pending} more will be sent; {why}.")
