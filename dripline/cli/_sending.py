"""What the sending commands (``run``, ``send-test``) share: the guard-rail overrides, logging."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from ..dispatch import PassReport

__all__ = ["PassLog", "allow_local_links_option", "allow_options", "configure_run_logging"]

F = TypeVar("F", bound=Callable[..., Any])


def allow_local_links_option(func: F) -> F:
    """``--allow-local-links``: send although links would point at a non-https base URL."""
    return click.option(
        "--allow-local-links",
        is_flag=True,
        default=None,
        help="Send although DRIPLINE_BASE_URL is not https:// (a local test inbox such as "
        "Mailpit). Also DRIPLINE_ALLOW_LOCAL_LINKS=1.",
    )(func)


def allow_options(func: F) -> F:
    """``--allow-local-links`` and ``--allow-example-addresses``: say so, to send anyway."""
    func = click.option(
        "--allow-example-addresses",
        is_flag=True,
        default=None,
        help="Send campaigns whose From or Reply-To is at an example domain (example.com, "
        ".test): for test inboxes only. Also DRIPLINE_ALLOW_EXAMPLE_ADDRESSES=1.",
    )(func)
    return allow_local_links_option(func)


def configure_run_logging(verbose: int) -> None:
    """One line per pass that did something; ``-v`` adds dripline's and APScheduler's details.

    APScheduler logs two INFO lines on every tick ("Running job", "executed
    successfully"), and a warning for every tick a long pass spans ("skipped: maximum
    number of running instances reached", which is the design: one pass at a time):
    thousands a day that bury the lines that matter. A failing pass is logged by
    dripline itself.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
    )
    logging.getLogger("apscheduler").setLevel(logging.INFO if verbose else logging.ERROR)
    # tzlocal's debug lines (how it guessed the machine's zone) and markdown-it's (each
    # rule it tries on each block, hundreds a pass) say nothing about sending.
    logging.getLogger("tzlocal").setLevel(logging.INFO)
    logging.getLogger("markdown_it").setLevel(logging.INFO)


class PassLog:
    """One line per pass that did something, and a quiet heartbeat while nothing is due.

    The heartbeat counts passes (``every`` of them), not wall-clock time, so it
    follows the timetable's own clock.
    """

    def __init__(self, every: int, verbose: bool = False) -> None:
        self.every = every
        self.verbose = verbose
        self.idle = 0

    def __call__(self, report: PassReport) -> None:
        stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z"
        if report.claimed or report.errors:
            self.idle = 0
            click.echo(f"{stamp} {report.summary()}")
            for error in report.errors[:20]:
                click.echo(f"  {error}", err=True)
            return
        self.idle += 1
        if self.verbose:
            click.echo(f"{stamp} nothing due")
        elif self.idle % self.every == 0:
            click.echo(f"{stamp} still running: nothing was due in the last {self.idle} pass(es)")
