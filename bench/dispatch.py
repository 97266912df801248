"""`dripline run` end to end: claim, render, send, record, from SQLite to Postfix's smtp-sink.

    python bench/dispatch.py [--subscribers 20000] [--connections 1 4]

Enrolls N subscribers in the ketamine campaign in a fresh SQLite file, makes step 1
due for all of them, starts smtp-sink on a loopback port and times one dispatch
pass (what `dripline run --once` does) per sender configuration. Prints a table.
Needs /usr/sbin/smtp-sink (Debian's postfix: `bash .ci/postfix.sh install`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from dripline.campaign import load_campaign  # noqa: E402
from dripline.runtime import dispatcher_for  # noqa: E402
from dripline.settings import Settings  # noqa: E402
from dripline.store import NewSubscriber, enroll_many, normalize_email, open_store  # noqa: E402
from dripline.timetable import Timetable  # noqa: E402

START = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = ["/usr/sbin/smtp-sink"] + (["-u", "nobody"] if os.geteuid() == 0 else [])
    sink = subprocess.Popen([*command, f"127.0.0.1:{port}", "1024"])
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return sink, port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def prepare(folder: Path, count: int) -> Settings:
    campaign = load_campaign(ROOT / "campaigns" / "ketamine-therapy")
    settings = Settings(
        root=ROOT,
        database_url=f"sqlite:///{folder / 'bench.db'}",
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


def reset(settings: Settings) -> None:
    engine = open_store(settings.database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE deliveries SET status='scheduled', attempts=0, first_attempt_at=NULL, "
                "message_id=NULL, sent_at=NULL, reply=NULL WHERE step=1"
            )
        )
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    if not shutil.which("/usr/sbin/smtp-sink"):
        print("/usr/sbin/smtp-sink is missing: bash .ci/postfix.sh install")
        return 1
    folder = Path(tempfile.mkdtemp(prefix="dripline-bench-"))
    sink, port = start_sink()
    rows = []
    try:
        started = time.perf_counter()
        settings = prepare(folder, args.subscribers)
        enroll_seconds = time.perf_counter() - started
        for connections in args.connections:
            reset(settings)
            configured = replace(
                settings, sender_url=f"smtp://127.0.0.1:{port}?connections={connections}"
            )
            with dispatcher_for(configured) as dispatcher:
                started = time.perf_counter()
                report = dispatcher.dispatch_due(START + timedelta(minutes=1))
                seconds = time.perf_counter() - started
            if report.sent != args.subscribers:
                print(f"only {report.sent} of {args.subscribers} sent: {report.summary()}")
                return 2
            rows.append((connections, seconds, report.sent / seconds))
    finally:
        sink.terminate()
        sink.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)

    print(
        f"\n`dripline run` pass: {args.subscribers:,} due deliveries, SQLite -> smtp-sink "
        f"(127.0.0.1), claim + render + send + record each outcome in its own transaction"
    )
    print(f"(enrolling {args.subscribers:,} subscribers took {enroll_seconds:.1f} s)\n")
    print(f"{'sender':<30}{'seconds':>10}{'deliveries/s':>15}")
    for connections, seconds, rate in rows:
        print(f"{'smtp:// connections=' + str(connections):<30}{seconds:>10.2f}{rate:>15,.0f}")
    best = max(rate for _, _, rate in rows)
    print(
        f"\ntarget: >= 2,000 deliveries/s end to end: best {best:,.0f}/s, "
        f"{'met' if best >= 2000 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
