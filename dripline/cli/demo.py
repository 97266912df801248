"""``dripline demo``: enroll sample subscribers, send the whole sequence on a simulated clock."""

from __future__ import annotations

import contextlib
import shlex
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..demo import DemoResult, run_demo
from ..demo import local as local_time
from . import settings_from
from ._store import load_campaign_by_slug
from .run import parse_now

__all__ = ["demo_command"]


@click.command("demo")
@click.option(
    "--campaign", "slug", default="ketamine-therapy", show_default=True, help="The campaign to run."
)
@click.option(
    "--start",
    "start_text",
    metavar="ISO8601",
    help="When the sample subscribers sign up (default: now).",
)
@click.pass_context
def demo_command(ctx: click.Context, slug: str, start_text: str | None) -> None:
    """Run a campaign end to end in demo/ (SQLite + Maildir), moving a simulated clock."""
    settings = settings_from(ctx)
    campaign = load_campaign_by_slug(settings, slug)
    start = parse_now(start_text, "--start") or datetime.now(UTC).replace(second=0, microsecond=0)
    result = run_demo(settings, campaign, start)

    console = Console()
    table = Table(title=f"{campaign.name}: each subscriber's timeline", title_justify="left")
    table.add_column("step", justify="right")
    for address in result.timelines:
        city = result.zones[address].rsplit("/", 1)[-1].replace("_", " ")
        table.add_column(f"{address.split('@')[0]}, {city}")
    for step in campaign.steps:
        cells = []
        for address, entries in result.timelines.items():
            entry = next(e for e in entries if e.step == step.number)
            when = entry.sent_at or entry.due_at
            cells.append(f"{local_time(when, result.zones[address])} {entry.status}")
        table.add_row(str(step.number), *cells)
    console.print(table)
    for step in campaign.steps:
        console.print(f"  {step.number}. {step.subject}")
    console.print(
        f"{result.passes} dispatch passes on a simulated clock: {result.report.summary()}"
    )
    emails = sorted((result.outbox / "new").iterdir()) if (result.outbox / "new").is_dir() else []
    console.print(
        f"{len(emails)} emails are in the Maildir {result.outbox} (one file each in "
        f"{result.outbox / 'new'}; open the folder with any mail client, or a file as .eml)."
    )
    # Plain echo, not rich: a command wrapped at the terminal's width cannot be pasted.
    click.echo("Look inside (the demo's own database and outbox, not ./dripline.db):")
    for command in inspect_commands(settings.root, slug, result):
        click.echo(f"  {command}")


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it, shell-quoted."""
    with contextlib.suppress(ValueError):  # outside the current folder: keep it absolute
        path = path.resolve().relative_to(Path.cwd().resolve())
    return shlex.quote(str(path))


def inspect_commands(root: Path, slug: str, result: DemoResult) -> list[str]:
    """Commands that read what the demo wrote, runnable as printed from the current folder."""
    here = Path.cwd().resolve() == root.resolve()
    dripline = "dripline" if here else f"dripline --root {_shown(root)}"
    database = _shown(result.database)
    person = next(iter(result.timelines))
    return [
        f"{dripline} status {slug} --db {database}",
        f"{dripline} timeline {slug} --email {person} --db {database}",
        f"ls {_shown(result.outbox / 'new')}",
        f"mutt -f {_shown(result.outbox)}",
    ]
