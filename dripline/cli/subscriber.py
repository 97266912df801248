"""``dripline subscriber set EMAIL key=value ...`` and ``dripline subscriber show EMAIL``.

Attributes change over time (a plan upgrade, a country): conditional steps (``when``)
and templates read them when a step is due, so a change applies to every step not
yet sent. Values are checked like a CSV import's; an empty value removes an attribute.
"""

from __future__ import annotations

import json

import click

from ..errors import DriplineError
from ..store import SubscriberProfile, set_subscriber_fields, subscriber_profile
from . import settings_from
from ._store import db_option, open_settings_store

__all__ = ["subscriber_group"]


@click.group("subscriber")
def subscriber_group() -> None:
    """Show or change one subscriber's stored fields and attributes."""


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DriplineError(f"expected key=value (such as plan=pro), not {item!r}")
        if key.strip() in pairs:
            raise DriplineError(f"{key.strip()!r} is given twice")
        pairs[key.strip()] = value
    return pairs


def _print(profile: SubscriberProfile) -> None:
    click.echo(f"{profile.email} ({profile.status})")
    click.echo(f"  name: {profile.name}")
    click.echo(f"  first_name: {profile.first_name}")
    click.echo(f"  timezone: {profile.timezone or '(campaign default)'}")
    for key, value in profile.attributes.items():
        click.echo(f"  {key}: {value}")
    for slug, status in profile.campaigns.items():
        click.echo(f"  campaign {slug}: {status}")


@subscriber_group.command("set")
@click.argument("email")
@click.argument("values", nargs=-1, required=True, metavar="KEY=VALUE...")
@db_option
@click.pass_context
def set_command(
    ctx: click.Context, email: str, values: tuple[str, ...], database_url: str | None
) -> None:
    """Set name, first_name or attributes of EMAIL (plan=pro; plan= removes it)."""
    pairs = _pairs(values)
    settings = settings_from(ctx, database_url=database_url)
    engine = open_settings_store(settings, existing=True)
    try:
        profile = set_subscriber_fields(engine, email, pairs)
    finally:
        engine.dispose()
    click.echo(f"Updated {profile.email}: {', '.join(sorted(pairs))}")


@subscriber_group.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@db_option
@click.pass_context
def show_command(ctx: click.Context, email: str, as_json: bool, database_url: str | None) -> None:
    """Show EMAIL's stored fields, attributes and campaigns."""
    settings = settings_from(ctx, database_url=database_url)
    engine = open_settings_store(settings, existing=True)
    try:
        profile = subscriber_profile(engine, email)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(profile.as_json(), indent=2, ensure_ascii=False))
        return
    _print(profile)
