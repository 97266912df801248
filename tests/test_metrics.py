"""`dripline run --metrics-port`: Prometheus metrics scraped from a real run while a pass
is still sending (the SMTP server holds the pass half-way until the test has looked)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from prometheus_client.parser import text_string_to_metric_families
from results_support import cli, env_for, free_port
from smtp_servers import FaultyHandler, running_server

DRIPLINE = Path(sys.executable).parent / "dripline"
PEOPLE = 150


class HalfwayGate(FaultyHandler):
    """Accepts ``after`` messages, then holds every DATA reply until ``release`` is set."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.release = threading.Event()
        self.deadline = time.monotonic() + 60  # a broken test fails, never hangs

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        while (
            len(self.received) >= self.after
            and not self.release.is_set()
            and time.monotonic() < self.deadline
        ):
            await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _sent(samples: dict) -> float:
    return samples.get(("dripline_deliveries_total", (("outcome", "sent"),)), 0.0)


def test_counters_rise_during_a_pass(project: Path) -> None:
    env = env_for(project, "https://news.example.com")
    rows = ["email,name,timezone,subscribed_at"]
    rows += [f"p{i}@example.com,P {i},UTC,2026-01-01T00:00:00Z" for i in range(PEOPLE - 1)]
    rows.append("unknown@example.com,Nobody,UTC,2026-01-01T00:00:00Z")  # a 550 5.1.1
    (project / "people.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    cli(env, "import", str(project / "people.csv"), "--campaign", "ketamine-therapy")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    handler = HalfwayGate(after=80)
    with running_server(handler) as server:
        process = subprocess.Popen(
            [
                str(DRIPLINE),
                "run",
                "--tick",
                "60",
                "--metrics-port",
                str(port),
                "--sender",
                f"smtp://127.0.0.1:{server.port}",
            ],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 90
            halfway: dict = {}
            while time.monotonic() < deadline:
                try:
                    halfway = _samples(url)
                except httpx.TransportError:
                    halfway = {}
                if _sent(halfway) > 0:
                    break
                assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
                time.sleep(0.05)
            # Mid-pass: some of the first chunk are counted, the gate holds the rest.
            assert 0 < _sent(halfway) < PEOPLE - 1, halfway
            assert len(handler.received) <= 80
            handler.release.set()
            final: dict = {}
            while time.monotonic() < deadline:
                final = _samples(url)
                depth = final.get(("dripline_queue_depth", (("status", "sent"),)), 0)
                if depth >= PEOPLE - 1:
                    break
                time.sleep(0.1)
        finally:
            process.terminate()
            output = process.communicate(timeout=20)[0]
    assert f"metrics: http://127.0.0.1:{port}/metrics" in output
    assert _sent(final) == PEOPLE - 1 > _sent(halfway)
    assert final[("dripline_deliveries_total", (("outcome", "bounced"),))] == 1
    assert final[("dripline_sender_errors_total", (("kind", "bounce"),))] == 1
    assert final[("dripline_queue_depth", (("status", "sent"),))] == PEOPLE - 1
    assert final[("dripline_queue_depth", (("status", "scheduled"),))] > 0  # later steps
    assert final[("dripline_pass_duration_seconds_count", ())] >= 1
    assert final[("dripline_claim_latency_seconds_count", ())] >= PEOPLE
    assert final[("dripline_lease_expiries_total", ())] == 0


def test_a_busy_metrics_port_is_one_error_line(project: Path) -> None:
    env = env_for(project, "https://news.example.com")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = cli(env, "run", "--once", "--metrics-port", str(port), code=1)
    assert f"Error: --metrics-port {port}: cannot listen on 127.0.0.1:{port}" in out
    assert "Traceback" not in out
