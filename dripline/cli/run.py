"""``dripline run [--once] [--now ISO8601] [--tick SECONDS] [--lease SECONDS]``: the timetable."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from ..dispatch import CampaignLibrary, PassReport
from ..errors import DriplineError
from ..runtime import check_ready_to_send, dispatcher_for
from ..settings import Settings, redact_url
from . import settings_from
from ._plans import apply_all
from ._sending import PassLog, allow_options, configure_run_logging
from ._store import db_option, open_settings_store

if TYPE_CHECKING:
    from ..metrics import RunMetrics

__all__ = ["parse_now", "run_command"]


def parse_now(value: str | None, option: str = "--now") -> datetime | None:
    """An ISO 8601 instant with an offset (or Z); naive means UTC. Errors name ``option``."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        moment.astimezone(UTC)
    except (ValueError, OverflowError) as err:
        raise DriplineError(
            f"{option}: not an ISO 8601 date and time: {value!r} (e.g. 2026-03-05T09:00:00Z)"
        ) from err
    if not 1970 <= moment.astimezone(UTC).year <= 9000:
        raise DriplineError(f"{option}: {value!r} is outside the years 1970 to 9000")
    return moment


def _applying(
    settings: Settings, dispatch: Callable[[datetime], PassReport]
) -> Callable[[datetime], PassReport]:
    """``dispatch`` preceded by applying pending plans when the campaign files changed."""
    watcher = CampaignLibrary(settings.campaigns_dir, settings.templates_dir)
    engine = open_settings_store(settings)
    first = [True]

    def run_pass(now: datetime) -> PassReport:
        if watcher.refresh() or first[0]:
            for plan in apply_all(settings, engine, None, now):
                if plan.changes:
                    click.echo(f"{plan.campaign}: applied ({plan.summary()})")
            first[0] = False
        return dispatch(now)

    return run_pass


def _serve_metrics(port: int) -> RunMetrics:
    """Metrics on 127.0.0.1:``port``; a busy port is one clear error before anything is sent."""
    from ..metrics import RunMetrics

    metrics = RunMetrics()
    try:
        metrics.serve(port)
    except OSError as err:
        raise DriplineError(
            f"--metrics-port {port}: cannot listen on 127.0.0.1:{port} ({err.strerror})"
        ) from None
    click.echo(f"metrics: http://127.0.0.1:{port}/metrics")
    return metrics


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
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=0.1),
    default=3600.0,
    show_default=True,
    help="Seconds between 'still running' lines while nothing is due.",
)
@click.option("-v", "--verbose", count=True, help="Log every pass and the scheduler's ticks.")
@allow_options
@click.option(
    "--apply",
    "apply_plans",
    is_flag=True,
    help="Apply pending campaign plans at the start of each pass (deploys from CI).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    metavar="PORT",
    help="Expose Prometheus metrics on http://127.0.0.1:PORT/metrics.",
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
    heartbeat: float,
    verbose: int,
    allow_local_links: bool | None,
    allow_example_addresses: bool | None,
    database_url: str | None,
    apply_plans: bool,
    metrics_port: int | None,
) -> None:
    """Send every due email; keep running on a timetable unless --once."""
    settings = settings_from(
        ctx,
        database_url=database_url,
        sender_url=sender_url,
        lease_seconds=lease_seconds,
        allow_local_links=allow_local_links,
        allow_example_addresses=allow_example_addresses,
    )
    now = parse_now(now_text)
    if now is not None and not once:
        raise DriplineError("--now only makes sense with --once (a single pass at that instant)")
    check_ready_to_send(settings)
    stop = threading.Event()
    import scheduler  # the top-level timetable module of this project

    metrics = _serve_metrics(metrics_port) if metrics_port is not None else None
    with dispatcher_for(settings, stop=stop, batch_size=batch, metrics=metrics) as dispatcher:
        where = f"{redact_url(settings.effective_database_url)} -> {dispatcher.sender.display_url}"
        dispatch = dispatcher.dispatch_due
        if apply_plans:
            dispatch = _applying(settings, dispatch)
        if once:
            with scheduler.stop_on_signals(stop):
                report = dispatch(now or datetime.now(UTC))
            stopped = " (stopped by a signal)" if stop.is_set() else ""
            click.echo(f"dispatch pass ({where}){stopped}: {report.summary()}")
            for error in report.errors[:20]:
                click.echo(f"  {error}", err=True)
            return
        configure_run_logging(verbose)
        click.echo(f"dripline run: every {tick:g} s ({where}); Ctrl-C or SIGTERM stops")
        scheduler.run_timetable(
            dispatch,
            tick=tick,
            stop=stop,
            on_pass=PassLog(every=max(1, round(heartbeat / tick)), verbose=bool(verbose)),
        )
        click.echo("dripline run: stopped cleanly")
