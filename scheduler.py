"""The dripline timetable: one APScheduler job that sends whatever is due.

``python scheduler.py [--once] [--now ISO8601] [--tick SECONDS]`` is ``dripline run``.

What is due lives in the deliveries table, not in APScheduler: a single interval
job (coalesced, never two at once) claims due deliveries in batches and hands
them to the dispatcher. Millions of scheduled emails cost APScheduler nothing,
and several ``dripline run`` processes can share one database safely because
the claim, not the scheduler, decides who sends what.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

__all__ = ["run_timetable", "stop_on_signals"]

log = logging.getLogger("dripline.scheduler")


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT set ``stop`` instead of killing the process.

    The dispatcher checks ``stop`` between messages: it finishes and records the
    message in flight and hands back what it claimed but did not try.
    """

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: finishing the message in flight, then stopping", signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_timetable(
    dispatch: Callable[[datetime], Any],
    *,
    tick: float,
    stop: threading.Event,
    on_pass: Callable[[Any], None] | None = None,
) -> None:
    """Run ``dispatch(now)`` every ``tick`` seconds until ``stop`` is set (or SIGTERM/SIGINT).

    A signal sets ``stop``: the dispatcher finishes and records the message in
    flight, hands back what it claimed but did not try, and the scheduler then
    shuts down waiting for that job, so the process exits cleanly.
    """

    def job() -> None:
        try:
            report = dispatch(datetime.now(UTC))
        except Exception:  # keep the timetable alive; the next tick tries again
            log.exception("dispatch pass failed")
            return
        if on_pass is not None:
            on_pass(report)

    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    scheduler.add_job(
        job, IntervalTrigger(seconds=tick), id="dispatch", next_run_time=datetime.now(UTC)
    )
    with stop_on_signals(stop):
        scheduler.start()
        try:
            while not stop.wait(0.5):
                pass
        finally:
            scheduler.shutdown(wait=True)


if __name__ == "__main__":
    from dripline.cli import main

    sys.exit(main(["run", *sys.argv[1:]]))
