"""``dripline serve``: refuses to start without a secret; otherwise serves on loopback."""

from __future__ import annotations

import email
import email.policy
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from dripline.campaign import campaign_slugs
from dripline.cli import main

SECRET = "cli-test-secret-0123456789abcdef"
DRIPLINE = Path(sys.executable).parent / "dripline"


def test_refuses_to_start_without_a_secret_key(project: Path):
    result = CliRunner().invoke(
        main, ["--root", str(project), "serve"], env={"DRIPLINE_SECRET_KEY": None}
    )
    assert result.exit_code == 1
    assert "Error: DRIPLINE_SECRET_KEY is not set" in result.output
    assert "Traceback" not in result.output


def test_refuses_a_base_url_that_is_not_http(project: Path):
    result = CliRunner().invoke(
        main,
        ["--root", str(project), "serve"],
        env={"DRIPLINE_SECRET_KEY": SECRET, "DRIPLINE_BASE_URL": "mail.example.org"},
    )
    assert result.exit_code == 1 and "DRIPLINE_BASE_URL must start with https://" in result.output


def test_refuses_a_guessable_api_token(project: Path):
    result = CliRunner().invoke(
        main,
        ["--root", str(project), "serve"],
        env={
            "DRIPLINE_SECRET_KEY": SECRET,
            "DRIPLINE_BASE_URL": "https://mail.example.org",
            "DRIPLINE_API_TOKEN": "a",
        },
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Error: DRIPLINE_API_TOKEN is too short: use at least 16 random" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(project: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    port = _free_port()
    env = {
        **os.environ,
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_SECRET_KEY": SECRET,
        "DRIPLINE_BASE_URL": "https://mail.example.org",
        "DRIPLINE_DATABASE_URL": f"sqlite:///{project / 'serve.db'}",
        "DRIPLINE_SENDER": f"maildir:{project / 'outbox'}",
    }
    process = subprocess.Popen(
        [str(DRIPLINE), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/subscribe/ketamine-therapy", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    pytest.fail(f"dripline serve exited: {process.stdout.read()}")  # type: ignore[union-attr]
                time.sleep(0.1)
        yield base, process, project
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serves_the_form_and_mails_a_confirmation(server: tuple[str, subprocess.Popen[str], Path]):
    base, process, project = server
    form = httpx.get(f"{base}/subscribe/ketamine-therapy")
    assert form.status_code == 200 and "Top 6 Reasons" in form.text
    posted = httpx.post(
        f"{base}/subscribe/ketamine-therapy",
        data={"email": "ada@example.com", "first_name": "Ada", "consent": "yes"},
    )
    assert posted.status_code == 200 and "Check your inbox" in posted.text
    (path,) = (project / "outbox" / "new").iterdir()
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == "ada@example.com"
    process.terminate()
    output = process.communicate(timeout=10)[0]
    count = len(campaign_slugs(project / "campaigns"))  # whatever the project holds
    assert f"Serving {count} campaign(s) on http://127.0.0.1:" in output
    assert SECRET not in output and "/confirm/" not in output  # no secrets, no tokens logged


def test_a_busy_port_is_one_line_and_exit_1(project: Path):
    env = {
        **os.environ,
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_SECRET_KEY": SECRET,
        "DRIPLINE_BASE_URL": "https://mail.example.org",
        "DRIPLINE_DATABASE_URL": f"sqlite:///{project / 'serve.db'}",
    }
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [str(DRIPLINE), "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stdout == ""  # never claimed to be serving
    assert done.stderr == (
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(is another dripline serve running? choose another --port)\n"
    )
