"""``dripline run [--once] [--now ISO8601] [--tick SECONDS] [--lease SECONDS]``: the timetable."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import click

from ..dispatch import PassReport
from ..errors import DriplineError
from ..runtime import dispatcher_for
from ..settings import redact_url
from . import settings_from
from ._store import db_option

__all__ = ["parse_now", "run_command"]


def parse_now(value: str | None) -> datetime | None:
    """``--now``: an ISO 8601 instant with an offset (or Z); naive means UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        moment.astimezone(UTC)
    except (ValueError, OverflowError) as err:
        raise DriplineError(f"--now: not an ISO 8601 date and time: {value!r}") from err
    if not 1970 <= moment.astimezone(UTC).year <= 9000:
        raise DriplineError(f"--now: {value!r} is outside the years 1970 to 9000")
    return moment


@click.command("run")
@click.option("--once", is_flag=True, help="Run one dispatch pass and exit.")
@click.option(
    "--now",
    "now_text",
    metavar="ISO8601",
    help="Act as if the clock were at this instant (with --once; messages carry it).",
)
@click.option(
    "--tick",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds between dispatch passes.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Deliveries claimed per transaction.",
)
@click.option(
    "--lease",
    "lease_seconds",
    type=click.FloatRange(min=1),
    default=None,
    metavar="SECONDS",
    help="How long this worker's claims stay its own without a heartbeat "
    "(default: DRIPLINE_LEASE_SECONDS, else 60).",
)
@click.option(
    "--sender",
    "sender_url",
    metavar="URL",
    help="Sender URL (default: DRIPLINE_SENDER, else maildir:outbox).",
)
@db_option
@click.pass_context
def run_command(
    ctx: click.Context,
    once: bool,
    now_text: str | None,
    tick: float,
    batch: int,
    lease_seconds: float | None,
    sender_url: str | None,
    database_url: str | None,
) -> None:
    """Send every due email; keep running on a timetable unless --once."""
    settings = settings_from(
        ctx, database_url=database_url, sender_url=sender_url, lease_seconds=lease_seconds
    )
    now = parse_now(now_text)
    if now is not None and not once:
        raise DriplineError("--now only makes sense with --once (a single pass at that instant)")
    stop = threading.Event()
    import scheduler  # the top-level timetable module of this project

    with dispatcher_for(settings, stop=stop, batch_size=batch) as dispatcher:
        where = f"{redact_url(settings.effective_database_url)} -> {dispatcher.sender.display_url}"
        if once:
            with scheduler.stop_on_signals(stop):
                report = dispatcher.dispatch_due(now or datetime.now(UTC))
            stopped = " (stopped by a signal)" if stop.is_set() else ""
            click.echo(f"dispatch pass ({where}){stopped}: {report.summary()}")
            for error in report.errors[:20]:
                click.echo(f"  {error}", err=True)
            return
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        click.echo(f"dripline run: every {tick:g} s ({where}); Ctrl-C or SIGTERM stops")

        def on_pass(report: PassReport) -> None:
            if report.claimed:
                click.echo(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z {report.summary()}")

        scheduler.run_timetable(dispatcher.dispatch_due, tick=tick, stop=stop, on_pass=on_pass)
        click.echo("dripline run: stopped cleanly")
