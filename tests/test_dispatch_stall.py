"""A PostgreSQL worker stopped (SIGSTOP) half-way through a transaction blocks no one.

Real processes on PostgreSQL, a real SMTP server started by the test counting what
arrives, and the database read afterwards. Two `dripline run` workers send one step;
the test stops one of them while it is inside a write transaction (it holds row
locks). What must hold (issue 10): the other worker keeps sending and finishes the
queue, since the server ends the stalled session (idle-in-transaction timeout, a
third of the lease) and the stopped worker's lease expires, handing its claimed rows
back and turning the chunk it had in flight ``ambiguous``; nothing is sent twice.
Then the stopped worker is resumed (it finds its session gone, records what it can
and exits cleanly) or killed, and the database ends consistent either way.
"""

from __future__ import annotations

import os
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
SUBSCRIBERS = 3000
NOW = "2026-03-05T20:00:30Z"
LEASE = 4  # seconds: the stall limits are a third of it
CHUNK = 64  # the dispatcher's chunk: at most this many are 'sending' per worker
# A session of the worker process `pid` inside a transaction that has written (holds a
# transaction id, so row locks): what a stop must catch.
IN_WRITE_TRANSACTION = text(
    "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
    "WHERE a.application_name = :name AND a.xact_start IS NOT NULL "
    "AND l.locktype = 'transactionid' AND l.granted"
)

# The worker process `pid` has claimed rows (committed): it is sending.
HOLDS_ROWS = text(
    "SELECT count(*) FROM deliveries d JOIN workers w ON w.id = d.worker_id "
    "WHERE w.pid = :pid AND d.status IN ('claimed', 'sending')"
)


def worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [*DRIPLINE, "run", "--once", "--now", NOW, "--batch", "200", "--lease", str(LEASE)]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)


def unfinished(engine) -> int:
    """Rows still to be sent, or held by some worker (live or stalled)."""
    with engine.connect() as conn:
        return conn.scalar(
            text(
                "SELECT count(*) FROM deliveries WHERE step = 1 AND status IN "
                "('scheduled', 'claimed', 'sending')"
            )
        )


def stop_inside_a_transaction(engine, victim: subprocess.Popen[bytes], log: Path) -> None:
    """SIGSTOP ``victim`` while one of its sessions holds a write transaction open."""
    name = f"dripline pid {victim.pid}"
    deadline = time.monotonic() + 120
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        while time.monotonic() < deadline:
            assert victim.poll() is None, log.read_text()[-3000:]
            if not conn.scalar(HOLDS_ROWS, {"pid": victim.pid}):
                continue  # not yet in its stride (its registration is no test)
            if not conn.scalar(IN_WRITE_TRANSACTION, {"name": name}):
                continue
            victim.send_signal(signal.SIGSTOP)
            time.sleep(0.2)  # the stop has landed; a statement under way has ended
            if conn.scalar(IN_WRITE_TRANSACTION, {"name": name}):
                return  # stopped with its transaction (and its row locks) open
            victim.send_signal(signal.SIGCONT)  # it had committed meanwhile: once more
    pytest.fail("never caught the worker inside a write transaction")


@pytest.mark.parametrize("then", ["resumed", "killed"])
def test_a_worker_stopped_inside_a_transaction_blocks_no_one(
    project: Path, tmp_path: Path, then: str
):
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (see .ci/postgres.sh)")
    _reset_postgres(url)
    handler = RecordingHandler(pipelining=True)
    log = tmp_path / "workers.log"
    with running_server(handler) as server:
        env = {
            **os.environ,
            "DRIPLINE_ROOT": str(project),
            "DRIPLINE_DATABASE_URL": url,
            "DRIPLINE_SECRET_KEY": "test-secret",
            "DRIPLINE_BASE_URL": "https://news.example.com",
            "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",  # the sample campaign, to a test server
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
        victim, other = worker(env, log), worker(env, log)
        try:
            stop_inside_a_transaction(engine, victim, log)
            stopped_with = len(handler.received)

            # While it stays stopped, the other worker (restarted when its pass ends
            # before the lease has run out) sends everything else.
            deadline = time.monotonic() + 180
            restarts = 0
            while unfinished(engine):
                assert time.monotonic() < deadline, ("the queue stalled", log.read_text()[-3000:])
                assert victim.poll() is None
                if other.poll() is not None:
                    assert other.returncode == 0, log.read_text()[-3000:]
                    other, restarts = worker(env, log), restarts + 1
                time.sleep(0.05)
            assert other.wait(timeout=120) == 0, log.read_text()[-3000:]
            assert len(handler.received) > stopped_with  # others went on sending
            with engine.connect() as conn:
                during = Counter(conn.scalars(text("SELECT status FROM deliveries WHERE step = 1")))
            assert set(during) <= {"sent", "ambiguous"}, during
            assert during["ambiguous"] <= CHUNK, during

            if then == "resumed":
                victim.send_signal(signal.SIGCONT)
                # Its session was ended by the server: it starts a new one, records the
                # outcomes it still has (on its ambiguous rows), claims nothing more.
                assert victim.wait(timeout=120) == 0, log.read_text()[-3000:]
            else:
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=30)
                subprocess.run([*DRIPLINE, "status"], env=env, check=True, capture_output=True)
        finally:
            for process in (victim, other):
                if process.poll() is None:
                    process.send_signal(signal.SIGCONT)
                    process.kill()
                    process.wait()
        received = list(handler.received)

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.email, d.status FROM deliveries d "
                "JOIN enrollments e ON e.id = d.enrollment_id "
                "JOIN subscribers s ON s.id = e.subscriber_id WHERE d.step = 1"
            )
        ).all()
        workers_left = conn.scalar(text("SELECT count(*) FROM workers"))
    engine.dispose()
    copies = Counter(item.rcpt_tos[0] for item in received)
    statuses = Counter(status for _, status in rows)
    context = (statuses, restarts)
    assert len(rows) == SUBSCRIBERS
    assert set(statuses) <= {"sent", "ambiguous"}, context  # nothing claimed or sending
    assert statuses["ambiguous"] <= CHUNK, context
    for email, status in rows:
        if status == "sent":
            assert copies[email] == 1, (email, copies[email], context)
        else:  # ambiguous: the relay may or may not have it, never twice
            assert copies[email] <= 1, (email, copies[email], context)
    assert workers_left == 0, context  # a clean exit ends its lease; a dead one was expired
