"""PostgreSQL workers side by side: 1, 2 and 4 `dripline run` processes on one database.

    python bench/scale.py --db postgresql+psycopg://USER@127.0.0.1/DB --reset
                          [--subscribers 20000] [--workers 1 2 4] [--rounds 3]
                          [--apart postgresql+psycopg://USER@127.0.0.1/DB2]

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

With ``--apart``, each round also times two workers that share no database (each on its
own, with half the deliveries; same PostgreSQL server, same sink): what two workers reach
on this machine when they have nothing of dripline's to contend for. Two workers on one
database close to that row means sharing the database costs nothing; the gap to 2.0x is
then the machine's.

What holds the workers back, figures that do not swing with the machine's load the
way throughput does: "SMTP idle" is the share of each worker's pass during which its
sender had nothing to send (it waited on a claim, on recording outcomes, on
rendering); the wait columns are the shares of samples of the workers' PostgreSQL
backends (pg_stat_activity, every 2 ms) spent waiting on another transaction's row
lock, on an advisory lock (lease maintenance only tries one, so this should stay 0) and on
the WAL flush of a commit.

What the machine allows: "machine busy cores" is the share of every core not idle during
the timed window (/proc/stat: the sink, the kernel's loopback and disk work and this
script included), "machine CPU/delivery" that over the deliveries, and "waiting for a
CPU" the time per delivery the workers' threads were ready to run but had no core
(/proc/self/task/*/schedstat). One worker's whole chain already keeps about one core
busy; the line under the table says what speed-up that leaves.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import resource
import statistics
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psycopg  # noqa: E402
from _bench import header, load_average, missing_tools, smtp_sink, smtp_source_rate  # noqa: E402
from dispatch import START, prepare, reset, warm  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from dripline.runtime import dispatcher_for  # noqa: E402
from dripline.settings import Settings  # noqa: E402
from dripline.store import make_engine  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


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


def machine_busy() -> float:
    """CPU seconds so far of the whole machine, every core, not idle (/proc/stat: user,
    nice, system, irq, softirq, steal; idle and iowait left out)."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / TICK


def runqueue_wait() -> float:
    """Seconds this process's threads have so far spent ready to run but waiting for a
    CPU (the second field of /proc/self/task/*/schedstat; 0.0 where the kernel keeps
    none)."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def worker(settings: Settings, go, results) -> None:
    with dispatcher_for(settings) as dispatcher:
        size = warm(dispatcher)
        busy = [0.0]  # seconds the sender spent inside send_many
        send_many = dispatcher.sender.send_many

        def timed_send_many(*args, **kwargs):
            started = time.perf_counter()
            try:
                return send_many(*args, **kwargs)
            finally:
                busy[0] += time.perf_counter() - started

        dispatcher.sender.send_many = timed_send_many  # type: ignore[method-assign]
        go.wait()
        cpu, queued = resource.getrusage(resource.RUSAGE_SELF), runqueue_wait()
        started = time.perf_counter()
        report = dispatcher.dispatch_due(START + timedelta(minutes=1))
        wall = time.perf_counter() - started
        after, queued = resource.getrusage(resource.RUSAGE_SELF), runqueue_wait() - queued
        done = time.monotonic()
    used = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    results.put((report.sent, used, done, size, 1 - busy[0] / wall, queued))


# pg_stat_activity (wait_event_type, wait_event) -> the column it counts in.
def _wait_kind(kind: str | None, event: str | None) -> str | None:
    if kind == "Lock":
        return "advisory lock" if event == "advisory" else "row lock"
    if (kind, event) in (("IO", "WALSync"), ("IO", "WALWrite"), ("LWLock", "WALWrite")):
        return "WAL flush"
    return None


class WaitSampler:
    """Samples what the PostgreSQL backends of one database wait on, every 2 ms."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.counts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                for kind, event in conn.execute(
                    "SELECT wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend' AND state <> 'idle'"
                ):
                    self.counts["samples"] += 1
                    if (column := _wait_kind(kind, event)) is not None:
                        self.counts[column] += 1
                time.sleep(0.002)

    def shares(self) -> dict[str, float]:
        samples = max(1, self.counts["samples"])
        return {k: self.counts[k] / samples for k in WAITS}


WAITS = ("row lock", "advisory lock", "WAL flush")


def one_run(settings: Settings, workers: int, database: str, dsn: str) -> dict[str, float]:
    """deliveries/s ("rate"), CPU seconds per delivery for workers + PostgreSQL ("cpu"),
    the whole machine's busy cores ("cores") and CPU seconds per delivery ("machine": the
    sink, the kernel's network and disk work and this script's sampler too), the message
    size ("size"), the workers' median SMTP idle share ("idle"), the seconds per delivery
    the workers' threads were ready to run but had no CPU ("queued") and the backends'
    wait shares (:data:`WAITS`)."""
    reset(settings)
    return _timed([settings] * workers, [database], dsn)


def apart_run(
    pair: tuple[Settings, Settings], databases: tuple[str, str], dsn: str, due: int
) -> dict[str, float]:
    """Two workers that share nothing but the machine and the PostgreSQL server: each on
    its own database with ``due`` // 2 due deliveries, the same sink."""
    for settings in pair:
        reset(settings, due // 2)
    return _timed(list(pair), list(databases), dsn)


def _timed(configs: list[Settings], databases: list[str], dsn: str) -> dict[str, float]:
    context = multiprocessing.get_context("fork")
    go = context.Barrier(len(configs) + 1)
    results = context.Queue()
    processes = [context.Process(target=worker, args=(c, go, results)) for c in configs]
    for process in processes:
        process.start()
    with WaitSampler(dsn) as sampler:
        go.wait()  # everyone compiled and connected
        started, pg_before = time.monotonic(), sum(postgres_cpu(d) for d in databases)
        busy_before = machine_busy()
        finished = [results.get(timeout=600) for _ in processes]
        busy, window = machine_busy() - busy_before, time.monotonic() - started
        pg_used = sum(postgres_cpu(d) for d in databases) - pg_before
    for process in processes:
        process.join(30)
    sent = sum(f[0] for f in finished)
    seconds = max(f[2] for f in finished) - started
    cpu = sum(f[1] for f in finished) + pg_used
    return {
        "rate": sent / seconds,
        "cpu": cpu / max(sent, 1),
        "cores": busy / window,
        "machine": busy / max(sent, 1),
        "size": finished[0][3],
        "idle": statistics.median(f[4] for f in finished),
        "queued": sum(f[5] for f in finished) / max(sent, 1),
        **sampler.shares(),
    }


def print_ceiling(figures: dict[int | str, dict[str, list[float]]], counts: list[int]) -> None:
    """What the machine allows: N workers at one worker's whole-machine CPU per delivery
    can go no faster than the busiest any row kept the machine over one worker's share.

    One worker's chain (the worker, its PostgreSQL backend, the sink, the kernel's
    loopback work) already keeps some cores busy; a speed-up past ``most busy cores /
    one worker's busy cores`` needs less CPU per delivery, not less contention."""
    if 1 not in counts:
        return
    one = statistics.median(figures[1]["cores"])
    most = max(statistics.median(figures[n]["cores"]) for n in counts)
    print(
        f"\none worker keeps {one:.2f} of {CORES} cores busy; the most any row kept busy is "
        f"{most:.2f}: at one worker's CPU per delivery no count of workers can pass "
        f"{most / one:.2f}x one ({CORES / one:.2f}x with every core busy)"
    )


def empty(url: str, reset: bool) -> bool:
    """Drop dripline's tables in ``url`` (False when it has some and ``reset`` is off)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        tables = list(
            conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        )
        if "subscribers" in tables and not reset:
            return False
        if tables:  # every table, whatever migrations it has seen
            conn.execute(text(f"DROP TABLE IF EXISTS {', '.join(tables)} CASCADE"))
    engine.dispose()
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.environ.get("DRIPLINE_TEST_POSTGRES_URL"))
    parser.add_argument("--reset", action="store_true", help="empty dripline's tables first")
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--connections", type=int, default=1, help="SMTP sessions per worker")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--apart",
        metavar="URL",
        help="a second PostgreSQL database (emptied too): adds a row of 2 workers that share "
        "no database, each with half the deliveries, to tell sharing from the machine's limit",
    )
    args = parser.parse_args()
    if not args.db or make_url(args.db).get_backend_name() != "postgresql":
        print("--db must be a PostgreSQL URL (or set DRIPLINE_TEST_POSTGRES_URL)")
        return 1
    if args.apart and make_url(args.apart).get_backend_name() != "postgresql":
        print("--apart must be a PostgreSQL URL")
        return 1
    if missing := missing_tools():
        print(f"{', '.join(missing)} missing: bash .ci/postfix.sh install")
        return 1
    for url in filter(None, (args.db, args.apart)):
        if not empty(url, args.reset):
            print(f"{make_url(url).database}: holds dripline tables: pass --reset to empty them")
            return 1
    database = make_url(args.db).database or ""
    dsn = make_url(args.db).set(drivername="postgresql").render_as_string(hide_password=False)
    load_before = load_average()
    settings = prepare(args.db, args.subscribers)
    second = prepare(args.apart, args.subscribers // 2) if args.apart else None
    rows: list[int | str] = [*args.workers, *(["apart"] if second else [])]
    rates: dict[int | str, list[float]] = {n: [] for n in rows}
    speedups: dict[int | str, list[float]] = {n: [] for n in rows}
    ratios: dict[int | str, list[float]] = {n: [] for n in rows}
    figures: dict[int | str, dict[str, list[float]]] = {
        n: collections.defaultdict(list) for n in rows
    }
    references: list[float] = []
    with smtp_sink() as port:
        configured = replace(
            settings, sender_url=f"smtp://127.0.0.1:{port}?connections={args.connections}"
        )
        size = int(one_run(configured, 1, database, dsn)["size"])  # a warm-up, not counted
        for _ in range(args.rounds):
            reference = smtp_source_rate(port, 4, args.subscribers, size)
            references.append(reference)
            base = None
            for workers in rows:
                if workers == "apart":
                    assert second is not None and args.apart
                    pair = (configured, replace(configured, database_url=args.apart))
                    names = (database, make_url(args.apart).database or "")
                    run = apart_run(pair, names, dsn, args.subscribers)
                else:
                    run = one_run(configured, int(workers), database, dsn)
                rate = run["rate"]
                base = base or rate
                rates[workers].append(rate)
                speedups[workers].append(rate / base)
                ratios[workers].append(rate / reference)
                for key, value in run.items():
                    figures[workers][key].append(value)

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
    label = {"apart": "2, separate databases (half each)"}
    for workers in rows:
        low, high = min(rates[workers]), max(rates[workers])
        print(
            f"{label.get(str(workers), str(workers)):<34}"
            f"{statistics.median(rates[workers]):>14,.0f}"
            f"{f'{low:,.0f}-{high:,.0f}':>18}{statistics.median(speedups[workers]):>13.2f}x"
            f"{statistics.median(ratios[workers]):>20.0%}"
            f"{statistics.median(figures[workers]['cpu']) * 1e6:>35,.0f} us"
        )
    print(
        f"\n{'workers':<34}{'machine busy cores':>20}{'machine CPU/delivery':>22}"
        f"{'waiting for a CPU':>19}{'SMTP idle':>12}"
        + "".join(f"{'waiting on ' + w:>26}" for w in WAITS)
        + "   (medians; waits: share of the backends' samples)"
    )
    for workers in rows:
        row = figures[workers]
        print(
            f"{label.get(str(workers), str(workers)):<34}"
            f"{statistics.median(row['cores']):>13.2f} of {CORES}"
            f"{statistics.median(row['machine']) * 1e6:>19,.0f} us"
            f"{statistics.median(row['queued']) * 1e6:>16,.0f} us"
            f"{statistics.median(row['idle']):>12.0%}"
            + "".join(f"{statistics.median(row[w]):>26.1%}" for w in WAITS)
        )
    print_ceiling(figures, args.workers)
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
