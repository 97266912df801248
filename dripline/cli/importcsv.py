"""``dripline import FILE.csv --campaign SLUG``: enroll everyone in a CSV, reporting bad rows.

Bad rows are reported as ``FILE:LINE: problem`` and skipped; all valid rows are
imported; the command then exits 1 so scripts notice. Importing the same file
again changes nothing; with ``--update`` existing subscribers take the file's
name, first name and attributes (a plan that changed, say).
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from ..store import enroll_many, normalize_email, read_subscriber_csv
from ..timetable import Timetable
from . import settings_from
from ._plans import record_baseline
from ._store import db_option, load_campaign_by_slug, open_settings_store

__all__ = ["import_command"]


@click.command("import")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(path_type=Path))
@click.option("--campaign", "slug", required=True, help="Campaign slug (folder name).")
@click.option(
    "--update",
    "update_existing",
    is_flag=True,
    help="Existing subscribers take the file's name, first name and attributes "
    "(without it they are left as they are).",
)
@db_option
@click.pass_context
def import_command(
    ctx: click.Context,
    csv_file: Path,
    slug: str,
    update_existing: bool,
    database_url: str | None,
) -> None:
    """Import subscribers from FILE.csv (email, name, timezone, subscribed_at, attributes)."""
    settings = settings_from(ctx, database_url=database_url)
    campaign = load_campaign_by_slug(settings, slug)
    table = Timetable.of(campaign)
    read = read_subscriber_csv(csv_file, campaign.schedule.zone)
    for problem in read.problems:
        click.echo(f"Error: {csv_file}:{problem.line}: {problem.message}", err=True)
    for warning in read.warnings:
        click.echo(f"Warning: {csv_file}:{warning.line}: {warning.message}", err=True)
    engine = open_settings_store(settings)
    console = Console(stderr=True)
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=len(read.people) < 1000,
        ) as progress:
            task = progress.add_task("importing", total=len(read.people))
            result = enroll_many(
                engine,
                table,
                slug,
                read.people,
                source=f"import:{csv_file.name}",
                progress=lambda n: progress.advance(task, n),
                update_existing=update_existing,
            )
        warnings = record_baseline(settings, engine, campaign) if result.enrolled else []
    finally:
        engine.dispose()
    for warning in warnings:
        click.echo(f"Warning: {warning}", err=True)
    for address, why in result.suppressed:
        line = read.line_of.get(normalize_email(address).key)
        where = f"{csv_file}:{line}" if line else str(csv_file)
        click.echo(f"Error: {where}: {address} not imported: {why}", err=True)
    click.echo(
        f"{csv_file}: {result.enrolled} enrolled in {slug} "
        f"({result.subscribers_created} new subscribers), "
        f"{result.already_enrolled} already enrolled, "
        f"{result.inactive_skipped} unsubscribed/bounced skipped, "
        f"{read.duplicates} duplicate row(s), {len(read.problems)} invalid row(s) skipped, "
        f"{len(result.suppressed)} suppressed address(es) refused, "
        f"{result.subscribers_updated} existing subscriber(s) updated, "
        f"{result.subscribers_left} left as they were"
        + ("" if update_existing or not result.subscribers_left else " (--update changes them)")
    )
    if read.problems or result.suppressed:
        ctx.exit(1)
