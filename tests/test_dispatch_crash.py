"""`dripline run` killed with SIGKILL at random moments, restarted, run to completion.

Real processes, a real SMTP server started by the test counting what arrives, and the
database read afterwards. What must hold (issue 10): every subscriber got each step
exactly once, except deliveries reported ``ambiguous`` (at most once, and at most one
chunk per kill); nothing is left ``claimed`` or ``sending``; nobody got step 2 before
step 1.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import POSTGRES_ENV, _reset_postgres
from smtp_servers import RecordingHandler, running_server
from sqlalchemy import text

from dripline.store import make_engine

DRIPLINE = [str(Path(sys.executable).with_name("dripline"))]
SUBSCRIBERS = 1000  # x 2 steps = 2,000 deliveries
KILLS_PER_STEP = 3
CHUNK = 64  # the dispatcher's chunk: at most this many are 'sending' per worker
STEPS = {1: "2026-03-05T20:00:30Z", 2: "2026-03-09T17:00:30Z"}
SUBJECT = re.compile(rb"(?m)^Subject: Reason (\d) of 6")


def store_url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'dripline.db'}"
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (see .ci/postgres.sh)")
    _reset_postgres(url)
    return url


class Fleet:
    """N `dripline run --once --now ...` workers, killed and restarted by the test."""

    def __init__(self, env: dict[str, str], now: str, size: int, log: Path) -> None:
        self.command = [*DRIPLINE, "run", "--once", "--now", now, "--batch", "200"]
        self.env, self.size, self.log = env, size, log
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.running.append(
                subprocess.Popen(self.command, env=self.env, stdout=out, stderr=out)
            )

    def fill(self) -> None:
        while len(self.running) < self.size:
            self.start()

    def reap(self) -> None:
        for process in [p for p in self.running if p.poll() is not None]:
            assert process.returncode == 0, self.log.read_text()[-3000:]
            self.running.remove(process)

    def kill_one(self, rng: random.Random) -> None:
        victim = rng.choice(self.running)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)  # reaped: its pid is gone, so it is dead to the others at once
        self.running.remove(victim)


def unfinished(engine, step: int, now: str) -> int:
    """Rows of ``step`` still to be sent at ``now``, or held by some worker."""
    with engine.connect() as conn:
        return conn.scalar(
            text(
                "SELECT count(*) FROM deliveries WHERE step = :step AND (status IN "
                "('claimed', 'sending') OR (status = 'scheduled' AND due_at <= :now))"
            ),
            {"step": step, "now": now.replace("T", " ").rstrip("Z")},
        )


def run_step_with_kills(
    engine, env: dict[str, str], step: int, workers: int, handler, rng, log: Path
) -> int:
    """Send ``step`` to everyone with KILLS_PER_STEP random SIGKILLs; how many kills."""
    fleet = Fleet(env, STEPS[step], workers, log)
    already = len(handler.received)
    kill_at = sorted(rng.sample(range(50, SUBSCRIBERS - 100), KILLS_PER_STEP))
    kills = 0
    deadline = time.monotonic() + 240
    fleet.fill()
    while True:
        assert time.monotonic() < deadline, "the fleet did not finish"
        arrived = len(handler.received) - already
        if kills < len(kill_at) and arrived >= kill_at[kills] and fleet.running:
            fleet.kill_one(rng)
            kills += 1
        fleet.reap()
        left = unfinished(engine, step, STEPS[step])
        if left and (len(fleet.running) < workers):
            fleet.fill()  # restarted: it hands back what the dead one held, and goes on
        if not left and not fleet.running:
            return kills
        time.sleep(0.02)


@pytest.mark.parametrize(("kind", "workers"), [("sqlite", 1), ("sqlite", 2), ("postgresql", 4)])
def test_sigkill_at_random_moments_loses_nothing_and_sends_nothing_twice(
    project: Path, tmp_path: Path, kind: str, workers: int
):
    url = store_url(kind, tmp_path)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    handler = RecordingHandler(pipelining=True)
    with running_server(handler) as server:
        env = {
            **os.environ,
            "DRIPLINE_ROOT": str(project),
            "DRIPLINE_DATABASE_URL": url,
            "DRIPLINE_SECRET_KEY": "test-secret",
            "DRIPLINE_BASE_URL": "https://news.example.com",
            "DRIPLINE_SENDER": f"smtp://127.0.0.1:{server.port}?timeout=20",
        }
        people = project / "people.csv"
        people.write_text(
            "email,name,timezone,subscribed_at\n"
            + "".join(
                f"r{i}@example.com,Reader {i},America/Los_Angeles,2026-03-05T12:00:00-08:00\n"
                for i in range(SUBSCRIBERS)
            )
        )
        subprocess.run(
            [*DRIPLINE, "import", str(people), "--campaign", "ketamine-therapy"],
            env=env,
            check=True,
            capture_output=True,
        )
        engine = make_engine(url)
        log = tmp_path / "workers.log"
        kills = {
            step: run_step_with_kills(engine, env, step, workers, handler, rng, log)
            for step in STEPS
        }
        received = list(handler.received)

    arrivals: dict[tuple[str, int], list[float]] = {}
    for item in received:
        step = int(SUBJECT.search(item.data).group(1))
        arrivals.setdefault((item.rcpt_tos[0], step), []).append(item.at)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.email, d.step, d.status FROM deliveries d "
                "JOIN enrollments e ON e.id = d.enrollment_id "
                "JOIN subscribers s ON s.id = e.subscriber_id WHERE d.step IN (1, 2)"
            )
        ).all()
        workers_left = conn.scalar(text("SELECT count(*) FROM workers"))
    engine.dispose()
    context = f"seed {seed}, kills {kills}"
    statuses = Counter((step, status) for _, step, status in rows)
    assert len(rows) == 2 * SUBSCRIBERS
    # Nothing stranded: every row of both steps was sent or is reported ambiguous.
    assert set(status for _, _, status in rows) <= {"sent", "ambiguous"}, (statuses, context)
    assert kills == {1: KILLS_PER_STEP, 2: KILLS_PER_STEP}, context
    for step in STEPS:
        ambiguous = statuses[(step, "ambiguous")]
        assert ambiguous <= kills[step] * CHUNK, (statuses, context)
    status_of = {(email, step): status for email, step, status in rows}
    for (email, step), status in status_of.items():
        copies = len(arrivals.get((email, step), []))
        if status == "sent":
            assert copies == 1, (email, step, copies, context)
        else:  # ambiguous: the relay may or may not have it, never twice
            assert copies <= 1, (email, step, copies, context)
    # Order: step 2 never arrived before step 1 (nor without it, unless step 1 is ambiguous).
    for (email, step), times in arrivals.items():
        if step == 2:
            first = arrivals.get((email, 1))
            if first is None:
                assert status_of[(email, 1)] == "ambiguous", (email, context)
            else:
                assert first[0] < times[0], (email, context)
    assert workers_left == 0, context  # clean exits end their leases; dead ones were expired
