"""``dripline preview`` as a user runs it: a real process, a real port, Ctrl+C to stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dripline.campaign import campaign_slugs


def dripline(*args: str) -> list[str]:
    return [sys.executable, "-c", "from dripline.cli import main; main()", *args]


def test_preview_serves_the_project_until_interrupted(project: Path) -> None:
    process = subprocess.Popen(
        dripline("--root", str(project), "preview", "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline()
        count = len(campaign_slugs(project / "campaigns"))  # whatever the project holds
        assert first.startswith(f"Previewing {count} campaign(s) at http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1].strip()
        deadline = time.monotonic() + 15
        while True:
            try:
                response = httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.1)
        assert response.status_code == 200
        assert "Top 6 Reasons to Consider Ketamine Therapy" in response.text
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_busy_port_is_one_clear_error(project: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            dripline("--root", str(project), "preview", "--port", str(port)),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}:")
    assert "Traceback" not in result.stderr


def test_a_folder_without_campaigns_is_one_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        dripline("--root", str(tmp_path), "preview", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr == f"Error: no campaigns/ folder in {tmp_path.resolve()}\n"


@pytest.mark.parametrize("module", ["dripline.preview", "dripline.cli.preview"])
def test_the_preview_never_loads_a_sender(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = [m for m in sys.modules if m == 'sender' or m.startswith('sender.')]\n"
        "print(loaded)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_open_starts_the_browser_on_the_served_address(project: Path, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    fake_browser = tmp_path / "browser.sh"
    fake_browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n', encoding="utf-8")
    fake_browser.chmod(0o755)
    env = {**os.environ, "BROWSER": f"{fake_browser} %s"}
    process = subprocess.Popen(
        dripline("--root", str(project), "preview", "--port", "0", "--open"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = process.stdout.readline().rsplit(" ", 1)[1].strip()
        deadline = time.monotonic() + 15
        while not (opened.exists() and opened.read_text(encoding="utf-8").strip()):
            assert time.monotonic() < deadline, "the browser was not opened"
            time.sleep(0.1)
        assert opened.read_text(encoding="utf-8").strip() == url
        assert httpx.get(url, timeout=5).status_code == 200  # it was already serving
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
