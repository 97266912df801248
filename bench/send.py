"""Messages per second of 15 KB messages through the SMTP sender, next to Postfix's smtp-source.

Starts Postfix's ``smtp-sink`` on a free loopback port and, in the same run and
against the same sink, times:

- ``smtp-source`` (Postfix's C load generator; 1 and 8 sessions, reused, no pipelining):
  the practical limit of this machine;
- plain ``smtplib`` with one reused connection (what most Python senders do);
- dripline's ``smtp://127.0.0.1:PORT?connections=N`` for N = 1, 4, 8, sending in
  ``send_many`` batches of 1,000 as the dispatcher does.

Each configuration runs ``--rounds`` times (interleaved, so a noisy moment hits all of
them); the table shows the median rate, the ratio to smtp-source with 8 sessions, and
the client CPU time per message. Target (issue 4): 8 connections >= 50% of smtp-source x8.

    python bench/send.py [--messages 10000] [--rounds 3]

Needs /usr/sbin/smtp-sink and smtp-source (Debian's postfix: ``bash .ci/postfix.sh install``).
Only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import functools
import resource
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import header, load_average, smtp_sink

from sender import OutgoingMessage, SendResult
from sender.smtp import SmtpSender

MESSAGE_BYTES = 15 * 1024
BATCH = 1000
FROM = "news@example.test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build_messages(count: int) -> list[OutgoingMessage]:
    """Realistic drip emails of ~15 KB: multipart/alternative, text + inline-styled HTML."""
    paragraph = (
        "Ketamine-assisted therapy pairs a low dose with talk therapy; "
        "this lesson explains what a session looks like and how to prepare. "
    )
    text = (paragraph * 4 + "\n\n") * 9
    html_paragraph = f'<p style="margin:0 0 16px;font:16px/1.5 Georgia,serif">{paragraph * 4}</p>'
    html = "<html><body><table role=presentation width=100%><tr><td>"
    html += "\n".join([html_paragraph] * 9) + "</td></tr></table></body></html>\n"
    template = EmailMessage(policy=policy.SMTP)
    template["From"] = f"Dripline <{FROM}>"
    template["To"] = "reader-XXXXXXXX@example.test"
    template["Subject"] = "Day 2: what a session looks like"
    template["Message-ID"] = "<MESSAGEID-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX@example.test>"
    template.set_content(text)
    template.add_alternative(html, subtype="html")
    raw = template.as_bytes()
    raw += b" " * max(0, MESSAGE_BYTES - len(raw) - 2) + b"\r\n"  # pad to size in the epilogue
    messages = []
    for index in range(count):
        to = f"reader-{index:08d}@example.test"
        message_id = f"<MESSAGEID-{uuid.uuid4().hex}@example.test>"
        data = raw.replace(b"reader-XXXXXXXX@example.test", to.encode()).replace(
            b"<MESSAGEID-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX@example.test>", message_id.encode()
        )
        messages.append(OutgoingMessage(FROM, (to,), data, message_id))
    return messages


def run_smtp_source(port: int, sessions: int, count: int) -> tuple[float, float]:
    started = time.perf_counter()
    subprocess.run(
        [
            *("/usr/sbin/smtp-source", "-d", "-s", str(sessions), "-m", str(count)),
            *("-l", str(MESSAGE_BYTES), "-f", FROM, "-t", "reader@example.test"),
            f"127.0.0.1:{port}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return count / (time.perf_counter() - started), float("nan")


def run_smtplib(port: int, messages: list[OutgoingMessage]) -> tuple[float, float]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        started, cpu = time.perf_counter(), cpu_seconds()
        for message in messages:
            client.sendmail(FROM, list(message.recipients), message.data)
        elapsed, used = time.perf_counter() - started, cpu_seconds() - cpu
    return len(messages) / elapsed, used / len(messages)


def run_dripline(
    port: int, connections: int, messages: list[OutgoingMessage]
) -> tuple[float, float]:
    sender = SmtpSender.from_url(f"smtp://127.0.0.1:{port}?connections={connections}")
    with sender:
        sender.send_many(messages[: connections * 50])  # open every session first
        started, cpu = time.perf_counter(), cpu_seconds()
        failed = 0
        for start in range(0, len(messages), BATCH):
            results = sender.send_many(messages[start : start + BATCH])
            failed += sum(1 for r in results if not isinstance(r, SendResult))
        elapsed, used = time.perf_counter() - started, cpu_seconds() - cpu
    if failed:
        raise SystemExit(f"{failed} messages were not accepted by smtp-sink")
    return len(messages) / elapsed, used / len(messages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="per configuration")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for tool in ("/usr/sbin/smtp-sink", "/usr/sbin/smtp-source"):
        if not shutil.which(tool):
            print(f"{tool} is missing: install Postfix (bash .ci/postfix.sh install)")
            return 1

    load_before = load_average()
    with smtp_sink() as port:
        messages = build_messages(args.messages)
        runs: dict[str, tuple[str, Callable[[], tuple[float, float]]]] = {
            "source-1": ("smtp-source (C) x1", lambda: run_smtp_source(port, 1, args.messages)),
            "source-8": ("smtp-source (C) x8", lambda: run_smtp_source(port, 8, args.messages)),
            "smtplib-1": ("smtplib, 1 reused conn", lambda: run_smtplib(port, messages)),
        }
        for n in (1, 4, 8):
            runs[f"dripline-{n}"] = (
                f"dripline smtp:// connections={n}",
                functools.partial(run_dripline, port, n, messages),
            )
        rates: dict[str, list[float]] = {key: [] for key in runs}
        cpu: dict[str, list[float]] = {key: [] for key in runs}
        for _ in range(args.rounds):
            for key, (_, run) in runs.items():
                rate, cpu_per_message = run()
                rates[key].append(rate)
                cpu[key].append(cpu_per_message)

    reference = statistics.median(rates["source-8"])
    size = len(messages[0].data)
    header(
        f"{size:,}-byte messages to smtp-sink on 127.0.0.1, {args.messages:,} per run, "
        f"median of {args.rounds} rounds",
        load_before,
    )
    print(f"{'client':<34} {'msgs/s':>8} {'vs smtp-source x8':>18} {'client CPU/msg':>15}")
    for key, (label, _) in runs.items():
        rate = statistics.median(rates[key])
        per_message = statistics.median(cpu[key])
        cpu_text = "-" if per_message != per_message else f"{per_message * 1e6:.0f} us"
        print(f"{label:<34} {rate:>8,.0f} {rate / reference:>17.0%} {cpu_text:>15}")
    ratio = statistics.median(rates["dripline-8"]) / reference
    verdict = "met" if ratio >= 0.5 else "NOT met"
    print(f"\ntarget: connections=8 at >= 50% of smtp-source x8: {ratio:.0%}, {verdict}")
    return 0 if ratio >= 0.5 else 2


if __name__ == "__main__":
    raise SystemExit(main())
