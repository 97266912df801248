"""PostgreSQL workers side by side: 1, 2 and 4 `dripline run` processes on one database.

    python bench/scale.py --db postgresql+psycopg://USER@127.0.0.1/DB --reset
                          [--subscribers 20000] [--workers 1 2 4] [--rounds 3]

Enrolls N subscribers (step 1 due for all) in the given PostgreSQL database (--reset
empties dripline's tables there first: never point it at a database you care about),
starts Postfix's smtp-sink on loopback and, per round and worker count, forks that
many worker processes. Each builds its dispatcher as `dripline run` does, compiles the
step and opens its SMTP session, then all start together on a barrier; the time is
from the barrier to the last worker done. CPU per delivery adds the workers' CPU and
that of the PostgreSQL backends serving this database (their /proc counters; the
server's background writers are not counted). Each round also times Postfix's C
`smtp-source` (4 sessions, same message size, same sink) as a reference for the
machine's state. Prints medians of the rounds, each worker count's speed-up over one
worker measured in the same round, and the ratio to the reference.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _bench import header, load_average, missing_tools, smtp_sink, smtp_source_rate  # noqa: E402
from dispatch import START, prepare, reset, warm  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from dripline.runtime import dispatcher_for  # noqa: E402
from dripline.settings import Settings  # noqa: E402
from dripline.store import make_engine  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def postgres_cpu(database: str) -> float:
    """CPU seconds so far of the PostgreSQL backends connected to ``database``."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if not title.startswith(b"postgres:") or f" {database} ".encode() not in title:
                continue
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    return total


def worker(settings: Settings, go, results) -> None:
    with dispatcher_for(settings) as dispatcher:
        size = warm(dispatcher)
        go.wait()
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        report = dispatcher.dispatch_due(START + timedelta(minutes=1))
        after = resource.getrusage(resource.RUSAGE_SELF)
        done = time.monotonic()
    used = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    results.put((report.sent, used, done, size))


def one_run(settings: Settings, workers: int, database: str) -> tuple[float, float, int]:
    """(deliveries/s, CPU seconds per delivery for workers + PostgreSQL, message size)."""
    reset(settings)
    context = multiprocessing.get_context("fork")
    go = context.Barrier(workers + 1)
    results = context.Queue()
    processes = [
        context.Process(target=worker, args=(settings, go, results)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    go.wait()  # everyone compiled and connected
    started, pg_before = time.monotonic(), postgres_cpu(database)
    finished = [results.get(timeout=600) for _ in processes]
    pg_used = postgres_cpu(database) - pg_before
    for process in processes:
        process.join(30)
    sent = sum(f[0] for f in finished)
    seconds = max(f[2] for f in finished) - started
    cpu = sum(f[1] for f in finished) + pg_used
    return sent / seconds, cpu / max(sent, 1), finished[0][3]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.environ.get("DRIPLINE_TEST_POSTGRES_URL"))
    parser.add_argument("--reset", action="store_true", help="empty dripline's tables first")
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--connections", type=int, default=1, help="SMTP sessions per worker")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.db or make_url(args.db).get_backend_name() != "postgresql":
        print("--db must be a PostgreSQL URL (or set DRIPLINE_TEST_POSTGRES_URL)")
        return 1
    if missing := missing_tools():
        print(f"{', '.join(missing)} missing: bash .ci/postfix.sh install")
        return 1
    engine = make_engine(args.db)
    with engine.begin() as conn:
        tables = list(
            conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        )
        if "subscribers" in tables and not args.reset:
            print("the database holds dripline tables: pass --reset to empty them")
            return 1
        if tables:  # every table, whatever migrations it has seen
            conn.execute(text(f"DROP TABLE IF EXISTS {', '.join(tables)} CASCADE"))
    engine.dispose()
    database = make_url(args.db).database or ""
    load_before = load_average()
    settings = prepare(args.db, args.subscribers)
    rates: dict[int, list[float]] = {n: [] for n in args.workers}
    cpu: dict[int, list[float]] = {n: [] for n in args.workers}
    speedups: dict[int, list[float]] = {n: [] for n in args.workers}
    ratios: dict[int, list[float]] = {n: [] for n in args.workers}
    references: list[float] = []
    with smtp_sink() as port:
        configured = replace(
            settings, sender_url=f"smtp://127.0.0.1:{port}?connections={args.connections}"
        )
        size = one_run(configured, 1, database)[2]  # a warm-up round, not counted
        for _ in range(args.rounds):
            reference = smtp_source_rate(port, 4, args.subscribers, size)
            references.append(reference)
            base = None
            for workers in args.workers:
                rate, per_delivery, _ = one_run(configured, workers, database)
                base = base or rate
                rates[workers].append(rate)
                cpu[workers].append(per_delivery)
                speedups[workers].append(rate / base)
                ratios[workers].append(rate / reference)

    header(
        f"PostgreSQL workers: {args.subscribers:,} due deliveries -> smtp-sink (127.0.0.1), "
        f"{args.connections} SMTP connection(s) per worker; median of {args.rounds} rounds",
        load_before,
    )
    print(
        f"{'workers':<34}{'deliveries/s':>14}{'range':>18}{'vs 1 worker':>14}"
        f"{'vs smtp-source x4':>20}{'CPU/delivery (workers + PostgreSQL)':>38}"
    )
    reference = statistics.median(references)
    spread = f"{min(references):,.0f}-{max(references):,.0f}"
    print(
        f"{'smtp-source (C) x4 (reference)':<34}{reference:>14,.0f}{spread:>18}{'':>14}{'100%':>20}"
    )
    for workers in args.workers:
        low, high = min(rates[workers]), max(rates[workers])
        print(
            f"{workers:<34}{statistics.median(rates[workers]):>14,.0f}"
            f"{f'{low:,.0f}-{high:,.0f}':>18}{statistics.median(speedups[workers]):>13.2f}x"
            f"{statistics.median(ratios[workers]):>20.0%}"
            f"{statistics.median(cpu[workers]) * 1e6:>35,.0f} us"
        )
    one = statistics.median(rates[args.workers[0]])
    print(
        f"\ntarget: one worker >= 2,000 deliveries/s: {one:,.0f}/s, "
        f"{'met' if one >= 2000 else 'NOT met'}"
    )
    if 2 in speedups:
        two = statistics.median(speedups[2])
        print(f"target: 2 workers >= 1.7x one: {two:.2f}x, {'met' if two >= 1.7 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
