"""Tracking and metrics when processes die: `dripline run` SIGKILLed mid-pass with tracked
links and restarted, `dripline serve` SIGKILLed while clicks arrive, and a dead worker's
lease expired by the next run as its real --metrics-port endpoint shows.

Real processes, a real SMTP server holding the pass half-way until the test has acted, the
emails read back from what the server received, and the database read afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from prometheus_client.parser import text_string_to_metric_families
from results_support import (
    DRIPLINE,
    SLUG,
    cli,
    env_for,
    free_port,
    landing_page,
    links,
    parse,
    parts,
    serving,
    track,
)
from smtp_servers import RecordingHandler, running_server

PEOPLE = 150  # more than two chunks of 64
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


class Gate(RecordingHandler):
    """Accepts ``after`` messages, then holds every DATA reply until ``release`` is set."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.release = threading.Event()
        self.deadline = time.monotonic() + 120  # a broken test fails, never hangs

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        while (
            len(self.received) >= self.after
            and not self.release.is_set()
            and time.monotonic() < self.deadline
        ):
            await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


def _wait(condition, what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _people(project: Path, env: dict[str, str]) -> None:
    rows = "".join(
        f"p{i:03d}@example.com,Pat {i},UTC,2026-01-01T00:00:00Z\n" for i in range(PEOPLE)
    )
    (project / "people.csv").write_text("email,name,timezone,subscribed_at\n" + rows)
    cli(env, "import", str(project / "people.csv"), "--campaign", SLUG)


def _db(project: Path) -> sqlite3.Connection:
    return sqlite3.connect(project / "dripline.db")


def _count(project: Path, sql: str) -> int:
    db = _db(project)
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


def _start_run(env: dict[str, str], sender: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(DRIPLINE), "run", "--sender", sender, *extra],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _kill_mid_pass(project: Path, env: dict[str, str], handler: Gate, sender: str) -> None:
    """`dripline run --once` until the gate holds it, SIGKILLed there."""
    victim = _start_run(env, sender, "--once")
    _wait(lambda: len(handler.received) >= handler.after, "the first messages")
    _wait(
        lambda: (
            _db(project)
            .execute("SELECT count(*) FROM deliveries WHERE status = 'sending'")
            .fetchone()[0]
            > 0
        ),
        "a chunk in flight",
    )
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)


def test_run_killed_mid_pass_keeps_every_tracked_link_working_and_counted_once(
    project: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with landing_page() as landing:
        track(project, landing)
        env = env_for(project, base)
        _people(project, env)
        handler = Gate(after=80)
        with running_server(handler) as server:
            sender = f"smtp://127.0.0.1:{server.port}"
            _kill_mid_pass(project, env, handler, sender)
            handler.release.set()
            restarted = _start_run(env, sender, "--once")
            output = restarted.communicate(timeout=180)[0]
            assert restarted.returncode == 0, output
        received = list(handler.received)
        with _db(project) as db:
            status = dict(
                db.execute(
                    "SELECT s.email, d.status FROM deliveries d JOIN enrollments e "
                    "ON e.id = d.enrollment_id JOIN subscribers s ON s.id = e.subscriber_id "
                    "WHERE d.step = 1"
                ).fetchall()
            )
            # Clicked an hour after the relay took each message: people's clicks.
            # An ambiguous row has no accepted_at: its clicks are timed from the
            # hand-off (attempted_at), so that moves back too.
            db.execute(
                "UPDATE deliveries SET accepted_at = datetime(accepted_at, '-1 hour'), "
                "attempted_at = datetime(attempted_at, '-1 hour'), "
                "sent_at = datetime(sent_at, '-1 hour') "
                "WHERE status IN ('sent', 'ambiguous')"
            )
        copies = Counter(r.rcpt_tos[0] for r in received)
        assert set(status.values()) <= {"sent", "ambiguous"}, Counter(status.values())
        assert all(n == 1 for n in copies.values()), copies.most_common(3)
        assert {a for a, s in status.items() if s == "sent"} <= set(copies)
        ambiguous = sum(s == "ambiguous" for s in status.values())
        assert 0 < ambiguous <= 64
        with serving(env, port):
            requests = 0
            for item in received:
                text, _ = parts(parse(item.data))
                for link, ref in zip(links(text, base, "c"), ("email1", "more"), strict=True):
                    answer = httpx.get(link, headers={"User-Agent": DESKTOP})
                    requests += 1
                    assert answer.status_code == 302, (item.rcpt_tos, link)
                    assert answer.headers["location"].startswith(f"{landing}?ref={ref}&")
    with _db(project) as db:
        clicks = db.execute("SELECT delivery_id, position, machine FROM clicks").fetchall()
    assert len(clicks) == requests == 2 * len(received)
    assert len(set((d, p) for d, p, _ in clicks)) == len(clicks)  # nothing counted twice
    assert not any(machine for _, _, machine in clicks)
    first = json.loads(cli(env, "report", SLUG, "--json"))["steps"][0]
    sent = sum(s == "sent" for s in status.values())
    assert (first["sent"], first["clicks"], first["ambiguous"]) == (sent, sent, ambiguous)


def test_serve_killed_while_clicks_arrive_loses_no_answered_click(project: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with landing_page() as landing:
        track(project, landing)
        env = env_for(project, base)
        _people(project, env)
        handler = RecordingHandler()
        with running_server(handler) as server:
            done = _start_run(env, f"smtp://127.0.0.1:{server.port}", "--once")
            assert done.wait(timeout=180) == 0, done.stdout.read()  # type: ignore[union-attr]
        targets = [
            link
            for item in handler.received
            for link in links(parts(parse(item.data))[0], base, "c")
        ]
        answered: list[str] = []
        lock = threading.Lock()
        serve = subprocess.Popen(
            [str(DRIPLINE), "serve", "--port", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: _up(base), "dripline serve")

        def click(link: str) -> None:
            try:
                answer = httpx.get(link, headers={"User-Agent": DESKTOP}, timeout=10)
            except httpx.TransportError:
                return  # the server died before answering: nothing promised
            if answer.status_code == 302:
                with lock:
                    answered.append(link)

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(click, link) for link in targets]
            _wait(lambda: len(answered) >= len(targets) // 3, "a third of the clicks")
            serve.send_signal(signal.SIGKILL)
            serve.wait(timeout=30)
            for future in futures:
                future.result()
        assert 0 < len(answered) < len(targets)
        with _db(project) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = db.execute("SELECT count(*) FROM clicks").fetchone()[0]
        # Every click answered with its redirect was committed first; a request cut by
        # the kill may or may not have been.
        assert len(answered) <= stored <= len(targets)
        with serving(env, port):  # restarted: the same links work and count again
            assert httpx.get(targets[0], headers={"User-Agent": DESKTOP}).status_code == 302
        with _db(project) as db:
            assert db.execute("SELECT count(*) FROM clicks").fetchone()[0] == stored + 1


def _up(base: str) -> bool:
    try:
        httpx.get(f"{base}/subscribe/{SLUG}", timeout=1)
    except httpx.TransportError:
        return False
    return True


def _metric(url: str, name: str) -> float | None:
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.TransportError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return sample.value
    return None


def test_a_dead_workers_lease_expired_by_the_next_run_shows_in_its_metrics(
    project: Path,
) -> None:
    env = env_for(project, "https://news.example.com")
    _people(project, env)
    handler = Gate(after=20)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with running_server(handler) as server:
        sender = f"smtp://127.0.0.1:{server.port}"
        _kill_mid_pass(project, env, handler, sender)
        with _db(project) as db:
            held = dict(
                db.execute(
                    "SELECT status, count(*) FROM deliveries WHERE worker_id IS NOT NULL "
                    "GROUP BY status"
                ).fetchall()
            )
            workers = db.execute("SELECT count(*) FROM workers").fetchone()[0]
        assert held.get("claimed", 0) > 0 and workers == 1  # the dead one still holds them
        handler.release.set()
        survivor = _start_run(env, sender, "--tick", "60", "--metrics-port", str(port))
        try:
            _wait(lambda: _metric(url, "dripline_lease_expiries_total") == 1.0, "an expiry")
            _wait(
                lambda: (
                    _db(project)
                    .execute(
                        "SELECT count(*) FROM deliveries WHERE step = 1 AND status IN "
                        "('scheduled', 'claimed', 'sending')"
                    )
                    .fetchone()[0]
                    == 0
                ),
                "the handed-back claims sent",
            )
            assert _metric(url, "dripline_lease_expiries_total") == 1.0
        finally:
            survivor.terminate()
            survivor.communicate(timeout=30)
    with _db(project) as db:
        step1 = dict(
            db.execute(
                "SELECT status, count(*) FROM deliveries WHERE step = 1 GROUP BY status"
            ).fetchall()
        )
        workers = db.execute("SELECT count(*) FROM workers").fetchone()[0]
    # The dead worker's claims went back and out; its chunk in flight is ambiguous.
    assert set(step1) <= {"sent", "ambiguous"} and step1["sent"] >= PEOPLE - 64
    assert workers == 0
