"""`dripline run` end to end: claim, render, send, record, from SQLite to Postfix's smtp-sink.

    python bench/dispatch.py [--subscribers 20000] [--connections 1 4] [--rounds 3]

Enrolls N subscribers in the ketamine campaign in a fresh SQLite file, makes step 1
due for all of them, starts smtp-sink on a loopback port and times one dispatch pass
(what `dripline run --once` does, after the step is compiled and the SMTP session
opened, as in a running worker) per sender configuration. Each round also times
Postfix's C `smtp-source` with 4 sessions sending messages of the same size to the
same sink: the reference, measured in the same run, since absolute figures swing
with the machine's load. Prints medians of the rounds, the ratio to the reference and
the CPU per delivery of the `dripline run` process (all its threads; SQLite runs inside
it), the figure to compare across runs on a busy machine.
Needs /usr/sbin/smtp-sink and smtp-source (Debian's postfix: `bash .ci/postfix.sh install`).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _bench import header, load_average, missing_tools, smtp_sink, smtp_source_rate  # noqa: E402
from sqlalchemy import text  # noqa: E402

from dripline.campaign import load_campaign  # noqa: E402
from dripline.render import Recipient  # noqa: E402
from dripline.runtime import dispatcher_for  # noqa: E402
from dripline.settings import Settings  # noqa: E402
from dripline.store import NewSubscriber, enroll_many, normalize_email, open_store  # noqa: E402
from dripline.timetable import Timetable  # noqa: E402

START = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)
SLUG = "ketamine-therapy"
TARGET = 4000  # deliveries/s, SQLite, one run, 4 connections (issue 10)


def prepare(database_url: str, count: int) -> Settings:
    campaign = load_campaign(ROOT / "campaigns" / SLUG)
    settings = Settings(
        root=ROOT,
        database_url=database_url,
        secret_key="bench-only",
        base_url="https://news.example.com",
        allow_example_addresses=True,  # the sample campaign's example.com sender, to a sink
    )
    engine = open_store(settings.database_url)
    people = (
        NewSubscriber(
            email=normalize_email(f"reader{i}@example.com"),
            name=f"Reader {i}",
            first_name="Reader" if i % 5 else "",
            timezone="America/Los_Angeles",
            subscribed_at=START,
        )
        for i in range(count)
    )
    enroll_many(engine, Timetable.of(campaign), campaign.slug, people, now=START)
    engine.dispose()
    return settings


def reset(settings: Settings, due: int | None = None) -> None:
    """Step 1 due again for everyone (or the first ``due`` of them), as if never sent."""
    engine = open_store(settings.database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE deliveries SET status='scheduled', attempts=0, first_attempt_at=NULL, "
                "attempted_at=NULL, worker_id=NULL, message_id=NULL, sent_at=NULL, reply=NULL "
                "WHERE step=1"
            )
        )
        if due is not None:
            conn.execute(
                text(
                    "UPDATE deliveries SET status='cancelled' WHERE step=1 AND id NOT IN "
                    "(SELECT id FROM deliveries WHERE step=1 ORDER BY id LIMIT :due)"
                ),
                {"due": due},
            )
        conn.execute(text("DELETE FROM workers"))
    if engine.dialect.name == "postgresql":
        # The UPDATE above leaves a dead row version and index entry behind per delivery,
        # which the first claims would wade through until autovacuum came: start each
        # round from a table as autovacuum keeps a live one.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM deliveries"))
    engine.dispose()


def warm(dispatcher) -> int:
    """Compile the step and open the SMTP session, as a running worker has; the message size."""
    compiled = dispatcher.library.step(SLUG, 1)
    recipient = Recipient("reader@example.com", {"name": "Reader", "first_name": "Reader"}, "")
    size = len(compiled.render_bytes(recipient, now=START)[1])
    dispatcher.sender.open()
    return size


def one_pass(settings: Settings, port: int, connections: int) -> tuple[float, int, int, float]:
    """(deliveries/s, sent, message size, CPU seconds per delivery) of one timed pass."""
    reset(settings)
    configured = replace(settings, sender_url=f"smtp://127.0.0.1:{port}?connections={connections}")
    with dispatcher_for(configured) as dispatcher:
        size = warm(dispatcher)
        started, cpu = time.perf_counter(), time.process_time()
        report = dispatcher.dispatch_due(START + timedelta(minutes=1))
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
    return report.sent / seconds, report.sent, size, cpu / max(report.sent, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if missing := missing_tools():
        print(f"{', '.join(missing)} missing: bash .ci/postfix.sh install")
        return 1
    load_before = load_average()
    folder = Path(tempfile.mkdtemp(prefix="dripline-bench-"))
    rates: dict[int, list[float]] = {n: [] for n in args.connections}
    ratios: dict[int, list[float]] = {n: [] for n in args.connections}
    cpu: dict[int, list[float]] = {n: [] for n in args.connections}
    references: list[float] = []
    try:
        started = time.perf_counter()
        settings = prepare(f"sqlite:///{folder / 'bench.db'}", args.subscribers)
        enroll_seconds = time.perf_counter() - started
        with smtp_sink() as port:
            size = one_pass(settings, port, 1)[2]  # a warm-up round, not counted
            for _ in range(args.rounds):
                reference = smtp_source_rate(port, 4, args.subscribers, size)
                references.append(reference)
                for connections in args.connections:
                    rate, sent, _, per_delivery = one_pass(settings, port, connections)
                    if sent != args.subscribers:
                        print(f"only {sent} of {args.subscribers} sent")
                        return 2
                    rates[connections].append(rate)
                    ratios[connections].append(rate / reference)
                    cpu[connections].append(per_delivery)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    header(
        f"`dripline run` pass: {args.subscribers:,} due deliveries of {size:,} bytes, SQLite -> "
        f"smtp-sink (127.0.0.1): claim, render, send, record; median of {args.rounds} rounds "
        f"(enrolling took {enroll_seconds:.1f} s)",
        load_before,
    )
    print(
        f"{'sender':<34}{'deliveries/s':>14}{'range':>18}{'vs smtp-source x4':>20}"
        f"{'CPU/delivery':>15}"
    )
    reference = statistics.median(references)
    low, high = min(references), max(references)
    spread = f"{low:,.0f}-{high:,.0f}"
    print(f"{'smtp-source (C) x4 (reference)':<34}{reference:>14,.0f}{spread:>18}{'100%':>20}")
    for connections in args.connections:
        median = statistics.median(rates[connections])
        low, high = min(rates[connections]), max(rates[connections])
        ratio = statistics.median(ratios[connections])
        print(
            f"{'dripline smtp:// connections=' + str(connections):<34}{median:>14,.0f}"
            f"{f'{low:,.0f}-{high:,.0f}':>18}{ratio:>20.0%}"
            f"{statistics.median(cpu[connections]) * 1e6:>12,.0f} us"
        )
    if 4 in rates:
        best = statistics.median(rates[4])
        verdict = "met" if best >= TARGET else "NOT met"
        print(f"\ntarget: 4 connections >= {TARGET:,} deliveries/s: {best:,.0f}/s, {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
