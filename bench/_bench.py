"""What the bench scripts share: Postfix's smtp-sink and smtp-source on loopback, the header.

Every table starts with the date, the load average and the command, so a figure can
be judged (and re-run) by whoever reads it.
"""

from __future__ import annotations

import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def smtp_sink() -> Iterator[int]:
    """Postfix's smtp-sink on a free 127.0.0.1 port (yields the port)."""
    port = free_port()
    command = [SINK] + (["-u", "nobody"] if os.geteuid() == 0 else [])
    sink = subprocess.Popen([*command, f"127.0.0.1:{port}", "1024"])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        sink.terminate()
        sink.wait(timeout=10)


def smtp_source_rate(port: int, sessions: int, count: int, size: int) -> float:
    """Messages/s of Postfix's C load generator: this machine's SMTP limit right now."""
    started = time.perf_counter()
    subprocess.run(
        [
            *(SOURCE, "-d", "-s", str(sessions), "-m", str(count), "-l", str(size)),
            *("-f", "news@example.test", "-t", "reader@example.test", f"127.0.0.1:{port}"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return count / (time.perf_counter() - started)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def header(title: str, load_before: str) -> None:
    print(f"\n{title}")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    print(f"load average (1, 5, 15 min): {load_before} before, {load_average()} after")
    print(f"command: python {shlex.join([str(Path(sys.argv[0])), *sys.argv[1:]])}\n")


def missing_tools() -> list[str]:
    return [tool for tool in (SINK, SOURCE) if not Path(tool).is_file()]
