"""Scale of the store and timetable: enrolling, claiming, memory, CSV import. Prints a table.

    .venv/bin/python bench/schedule.py                 # 1,000,000 subscribers (a few minutes)
    .venv/bin/python bench/schedule.py --subscribers 100000

Everything runs on SQLite files in a scratch folder (removed afterwards unless
--keep): enrollment through dripline.store.enroll_many (the code `dripline
import` uses), claims through SqlDeliveryQueue (the dispatcher's queue), the CSV
import through the real `dripline import` command in a subprocess.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dripline.campaign import load_campaign  # noqa: E402
from dripline.store import (  # noqa: E402
    NewSubscriber,
    NormalizedEmail,
    SqlDeliveryQueue,
    enroll_many,
    open_store,
)
from dripline.timetable import Timetable  # noqa: E402

SLUG = "ketamine-therapy"
BASE = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
SPACING = timedelta(seconds=1.2)  # a million sign-ups over about two weeks
ZONES = ("America/Los_Angeles", "Europe/London", "Asia/Kolkata", "Pacific/Auckland", None)
TABLE = Timetable.of(load_campaign(ROOT / "campaigns" / SLUG))


def people(count: int) -> Iterator[NewSubscriber]:
    for n in range(count):
        yield NewSubscriber(
            email=NormalizedEmail(f"reader{n}@example.com"),
            name=f"Reader {n}",
            timezone=ZONES[n % len(ZONES)],
            subscribed_at=BASE + n * SPACING,
            attributes={"plan": "gold"} if n % 3 == 0 else {},
        )


def enroll(path: Path, count: int) -> tuple[Engine, float]:
    engine = open_store(f"sqlite:///{path}")
    started = time.perf_counter()
    enroll_many(engine, TABLE, SLUG, people(count), defer_delivery_index=True, chunk_size=10_000)
    return engine, time.perf_counter() - started


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def claim_passes(
    engine: Engine, start: datetime, passes: int, batch: int
) -> tuple[list[float], list[float]]:
    """Dispatch passes: claim a batch (timed), then record each outcome in its own transaction."""
    queue = SqlDeliveryQueue(engine, lambda slug: TABLE)
    claim_ms: list[float] = []
    record_ms: list[float] = []
    now = start
    for _ in range(passes):
        t0 = time.perf_counter()
        claimed = queue.claim_due(now, batch)
        claim_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        for item in claimed:
            queue.mark_sent(item.delivery_id, message_id=f"<{item.delivery_id}@bench>", sent_at=now)
        record_ms.append((time.perf_counter() - t0) * 1000)
        assert len(claimed) == batch, f"only {len(claimed)} due at {now}"
        now += SPACING * batch  # the next thousand sign-ups become due
    return claim_ms, record_ms


def memory_of_passes(engine: Engine, start: datetime, passes: int, batch: int) -> tuple[int, int]:
    """(tracemalloc peak KiB, RSS growth KiB) over ``passes`` dispatch passes after a warm-up."""
    claim_passes(engine, start, 2, batch)
    gc.collect()
    rss_before = rss_kib()
    tracemalloc.start()
    claim_passes(engine, start + SPACING * batch * 2, passes, batch)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak // 1024, rss_kib() - rss_before


def due_time_costs(count: int) -> tuple[float, float]:
    """Microseconds per uncached timetable: dripline's calendar-day walk, and the cron
    arithmetic it replaced (APScheduler's CronTrigger, the reference), same inputs."""
    from apscheduler.triggers.cron import CronTrigger

    from dripline.timetable import _cached_due_times

    zones = [z for z in ZONES if z] + ["America/Santiago", "Australia/Lord_Howe"]
    inputs = [
        (zones[n % len(zones)], (BASE + timedelta(days=n // len(zones))).date())
        for n in range(count)
    ]
    schedule = TABLE.schedule
    started = time.perf_counter()
    for zone, day in inputs:
        _cached_due_times.__wrapped__(TABLE, zone, day, False, None)
    walk = (time.perf_counter() - started) / count * 1e6
    days = ",".join(("mon", "tue", "wed", "thu", "fri", "sat", "sun")[d] for d in schedule.weekdays)
    triggers = {
        z: CronTrigger(
            day_of_week=days,
            hour=schedule.send_time.hour,
            minute=schedule.send_time.minute,
            timezone=ZoneInfo(z),
        )
        for z in zones
    }
    started = time.perf_counter()
    for zone, day in inputs:
        trigger, previous = triggers[zone], None
        for rule in TABLE.steps:
            earliest = day + timedelta(days=rule.day)
            if previous is not None and earliest <= previous:
                earliest = previous + timedelta(days=1)
            start = datetime.combine(earliest, datetime.min.time(), tzinfo=ZoneInfo(zone))
            due = trigger.get_next_fire_time(None, start)
            previous = due.date()
    cron = (time.perf_counter() - started) / count * 1e6
    return walk, cron


def import_csv(folder: Path, rows: int) -> float:
    project = folder / "import-project"
    shutil.copytree(ROOT / "campaigns", project / "campaigns")
    csv_path = project / "people.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "timezone", "subscribed_at", "plan"])
        for n in range(rows):
            zone = ZONES[n % len(ZONES)] or ""
            writer.writerow(
                [
                    f"Person{n}@Example.com",
                    f"Person {n}",
                    zone,
                    (BASE + n * SPACING).strftime("%Y-%m-%dT%H:%M:%S"),
                    "gold",
                ]
            )
    command = [
        str(Path(sys.executable).parent / "dripline"),
        "--root",
        str(project),
        "import",
        str(csv_path),
        "--campaign",
        SLUG,
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000, help="the small store for memory")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--csv-rows", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dripline-bench-"))
    console = Console(width=120)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    results = Table(
        title=f"bench/schedule.py (SQLite, 2 vCPU) {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        title_justify="left",
        caption=f"load average at start {load}; command: {' '.join(sys.argv)}",
    )
    for column in ("measure", "result", "target"):
        results.add_column(column)
    try:
        walk_us, cron_us = due_time_costs(20_000)
        results.add_row(
            "one timetable, uncached (calendar-day walk; cron reference)",
            f"{walk_us:.0f} µs; {cron_us:.0f} µs (ratio {walk_us / cron_us:.2f})",
            "",
        )
        big_path = folder / "big.db"
        console.print(f"enrolling {args.subscribers:,} subscribers into {big_path} ...")
        big, enroll_s = enroll(big_path, args.subscribers)
        size_mb = sum(p.stat().st_size for p in folder.glob("big.db*")) / 1e6
        results.add_row(
            f"enroll {args.subscribers:,} subscribers ({args.subscribers * 6:,} deliveries)",
            f"{enroll_s:.1f} s ({args.subscribers / enroll_s:,.0f}/s), {size_mb:,.0f} MB",
            "< 120 s",
        )
        start = BASE + SPACING * args.batch * 3  # a few thousand step-1 emails are due
        claim_ms, record_ms = claim_passes(big, start, args.passes, args.batch)
        results.add_row(
            f"claim next {args.batch:,} due (median of {args.passes} passes, max)",
            f"{statistics.median(claim_ms):.1f} ms (max {max(claim_ms):.1f} ms)",
            "< 50 ms",
        )
        results.add_row(
            f"record {args.batch:,} outcomes, one transaction each (median)",
            f"{statistics.median(record_ms):.0f} ms",
            "",
        )
        small, _ = enroll(folder / "small.db", args.small)
        memory_start = start + SPACING * args.batch * (args.passes + 1)
        small_peak, small_rss = memory_of_passes(small, start, 5, args.batch)
        big_peak, big_rss = memory_of_passes(big, memory_start, 5, args.batch)
        results.add_row(
            f"memory of 5 dispatch passes: {args.small:,} subscribers",
            f"peak {small_peak:,} KiB traced, RSS +{small_rss:,} KiB",
            "",
        )
        results.add_row(
            f"memory of 5 dispatch passes: {args.subscribers:,} subscribers",
            f"peak {big_peak:,} KiB traced, RSS +{big_rss:,} KiB",
            "same as the small store",
        )
        # After an outage: three days of overdue steps; each claim re-times later steps.
        outage_queue = SqlDeliveryQueue(big, lambda slug: TABLE)
        outage_now = BASE + timedelta(days=5)
        outage_ms = []
        for _ in range(5):
            t0 = time.perf_counter()
            got = outage_queue.claim_due(outage_now, args.batch)
            outage_ms.append((time.perf_counter() - t0) * 1000)
            assert len({g.enrollment_id for g in got}) == len(got)
        results.add_row(
            f"claim {args.batch:,} after a 5-day outage (re-timing later steps, median)",
            f"{statistics.median(outage_ms):.1f} ms",
            "",
        )
        big.dispose()
        small.dispose()
        import_s = import_csv(folder, args.csv_rows)
        results.add_row(
            f"dripline import of a {args.csv_rows:,}-row CSV (whole command)",
            f"{import_s:.1f} s",
            "< 60 s",
        )
    finally:
        console.print(results)
        if args.keep:
            console.print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
