"""``?rate=`` is one limit for every worker: slots are handed out through the database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

from smtp_servers import RecordingHandler, running_server

from dripline.store import DatabaseRateLimit

DRIPLINE = [str(Path(sys.executable).with_name("dripline"))]
RATE = 20.0  # messages per second, for the whole fleet
MESSAGES = 120


def test_two_limiters_on_one_database_share_the_slots(engine):
    clock = [1_000.0]
    first = DatabaseRateLimit(engine, "smtp://relay:25", 10, block=3, clock=lambda: clock[0])
    second = DatabaseRateLimit(engine, "smtp://relay:25", 10, block=3, clock=lambda: clock[0])
    waits = [first.reserve(), second.reserve(), first.reserve(), second.reserve()]
    # first holds slots 0, 0.1, 0.2; second the next block 0.3, 0.4, 0.5.
    assert [round(w, 6) for w in waits] == [0.0, 0.3, 0.1, 0.4]
    clock[0] += 60  # reserved slots never spent late, in a burst
    assert first.reserve() == 0.0 and round(first.reserve(), 6) == 0.1


def test_four_workers_with_a_shared_rate_stay_under_it_together(project, db_url, tmp_path):
    handler = RecordingHandler(pipelining=True)
    with running_server(handler) as server:
        env = {
            **os.environ,
            "DRIPLINE_ROOT": str(project),
            "DRIPLINE_DATABASE_URL": db_url,
            "DRIPLINE_SECRET_KEY": "test-secret",
            "DRIPLINE_BASE_URL": "https://news.example.com",
            "DRIPLINE_SENDER": f"smtp://127.0.0.1:{server.port}?rate={RATE:g}/s",
            "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",  # the sample campaign, to a test server
        }
        people = project / "people.csv"
        people.write_text(
            "email,name,timezone,subscribed_at\n"
            + "".join(
                f"r{i}@example.com,Reader {i},America/Los_Angeles,2026-03-05T12:00:00-08:00\n"
                for i in range(MESSAGES)
            )
        )
        subprocess.run(
            [*DRIPLINE, "import", str(people), "--campaign", "ketamine-therapy"],
            env=env,
            check=True,
            capture_output=True,
        )
        command = [*DRIPLINE, "run", "--once", "--now", "2026-03-05T20:00:30Z", "--batch", "8"]
        workers = [
            subprocess.Popen(command, env=env, stdout=PIPE, stderr=PIPE, text=True)
            for _ in range(4)
        ]
        streams = [w.communicate(timeout=300) for w in workers]
        outputs = [out for out, _ in streams]
        arrivals = sorted(item.at for item in handler.received)
    assert [w.returncode for w in workers] == [0] * 4, streams
    assert len(arrivals) == MESSAGES
    sent_by = [int(re.search(r"sent (\d+)", out).group(1)) for out in outputs]
    assert sum(sent_by) == MESSAGES and sum(1 for n in sent_by if n) >= 2, sent_by
    # Server-side arrival times: over the whole run and over every 2-second window the
    # fleet stays at the rate (a little slack for delivery jitter on a loaded machine;
    # four per-process limits would be four times the rate).
    overall = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert overall <= RATE * 1.15, overall
    window = 2.0
    busiest = max(
        sum(1 for t in arrivals[i:] if t < start + window) for i, start in enumerate(arrivals)
    )
    assert busiest <= RATE * window + 8, busiest
