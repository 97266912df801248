"""Shared by the results tests: a tracked campaign, real `dripline` commands, a real
`dripline serve` process, a local landing page, and reading links back from emails."""

from __future__ import annotations

import contextlib
import email
import email.policy
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

import httpx
from click.testing import CliRunner

from dripline.cli import main

SECRET = "results-test-secret-0123456789abcdef"
API_TOKEN = "api-token-for-tests-0123456789"
SLUG = "ketamine-therapy"
DRIPLINE = Path(sys.executable).parent / "dripline"
GOAL = "booked-consult"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def track(project: Path, landing: str, *, opens: bool = False, goal: bool = True) -> None:
    """Turn on click tracking (and opens, and the goal) and put a landing link in step 1."""
    toml = project / "campaigns" / SLUG / "campaign.toml"
    extra = f"\n[tracking]\nclicks = true\nopens = {'true' if opens else 'false'}\n"
    if goal:
        extra += f'\n[goal]\nevent = "{GOAL}"\n'
    toml.write_text(toml.read_text(encoding="utf-8") + extra, encoding="utf-8")
    step = project / "campaigns" / SLUG / "01-rapid-relief.md"
    step.write_text(
        step.read_text(encoding="utf-8")
        + f"\n[Book a call]({landing}?ref=email1) or [read more]({landing}?ref=more).\n",
        encoding="utf-8",
    )


def env_for(project: Path, base_url: str, db_url: str | None = None) -> dict[str, str]:
    return {
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_SECRET_KEY": SECRET,
        "DRIPLINE_BASE_URL": base_url,
        "DRIPLINE_DATABASE_URL": db_url or f"sqlite:///{project / 'dripline.db'}",
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
        "DRIPLINE_ALLOW_LOCAL_LINKS": "1",
        "DRIPLINE_API_TOKEN": API_TOKEN,
    }


def cli(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner(env=env).invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result.output


def subscribe(env: dict[str, str], address: str, at: datetime) -> None:
    cli(env, "subscribe", address, "--campaign", SLUG, "--name", "Pat Doe", "--at", at.isoformat())


def run_once(env: dict[str, str], sender: str, now: datetime) -> str:
    return cli(env, "run", "--once", "--now", now.isoformat(), "--sender", sender)


@contextlib.contextmanager
def serving(env: dict[str, str], port: int) -> Iterator[str]:
    """`dripline serve` as its own process on 127.0.0.1:``port``; yields its base URL."""
    process = subprocess.Popen(
        [str(DRIPLINE), "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/subscribe/{SLUG}", timeout=1)
                break
            except httpx.TransportError as err:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("dripline serve did not start") from err
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


class _Landing(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"<!doctype html><title>Landing</title><p id=q>{self.path}</p>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def landing_page() -> Iterator[str]:
    """A local page that shows the path and query it was reached with."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Landing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/landing"
    finally:
        server.shutdown()
        server.server_close()


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text part, HTML part) of a campaign email."""
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return text, html


def links(text: str, base: str, kind: str) -> list[str]:
    """Every ``BASE/kind/TOKEN`` URL in ``text``, in order."""
    return re.findall(re.escape(base.rstrip("/")) + f"/{kind}/[A-Za-z0-9_-]+", text)
