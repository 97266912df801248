"""Spam score: every rendered message through Debian's SpamAssassin, local tests only.

``spamassassin -L -t`` runs the rules that need no network (no DNS blocklists, no
Razor/Pyzor), so a score depends only on the message and the installed rules.
Each run gets a fresh private home folder and an empty user preferences file, and
Bayes and auto-learning are off, so nothing from this machine's user (a
~/.spamassassin, learnt tokens) leaks in and the same message always scores the
same. All messages of a campaign go through one process as an mbox, because
loading the rules is most of SpamAssassin's time.
"""

from __future__ import annotations

import mailbox
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import DriplineError

__all__ = ["SpamReport", "SpamRule", "spam_reports", "spamassassin_path"]

SPAMASSASSIN = "spamassassin"
_TIMEOUT = 300  # seconds for one campaign's messages
# One SpamAssassin at a time: each takes a core for a second or more, and several preview
# pages asking at once should queue rather than start a perl process each.
_ONE_AT_A_TIME = threading.Lock()
_SCORE = re.compile(r"Content analysis details:\s+\((-?[\d.]+) points")
_MESSAGE_ID = re.compile(r"^Message-ID:\s*(<[^>\s]+>)", re.I | re.M)
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


@dataclass(frozen=True)
class SpamRule:
    """One SpamAssassin rule that hit: its points, name and description."""

    points: float
    name: str
    description: str

    def __str__(self) -> str:
        return f"{self.points:g} {self.name} ({self.description})"


@dataclass(frozen=True)
class SpamReport:
    """SpamAssassin's verdict on one message: total points and the rules behind them."""

    score: float
    rules: tuple[SpamRule, ...]


def spamassassin_path() -> str | None:
    """The ``spamassassin`` executable, or None when Debian's package is not installed."""
    return shutil.which(SPAMASSASSIN)


def _parse_report(text: str) -> SpamReport:
    match = _SCORE.search(text)
    if match is None:
        raise DriplineError("SpamAssassin printed no report (is spamassassin working?)")
    table = text[match.end() :].split("\n---- ", 1)[-1].split("\n", 1)[-1]
    rules: list[SpamRule] = []
    for line in table.splitlines():
        if not line.strip():
            if rules:
                break
            continue
        hit = _RULE.match(line)
        if hit:
            # "+ 0.0" turns SpamAssassin's "-0.0" (informational rules) into 0.
            points = float(hit.group(1)) + 0.0
            rules.append(SpamRule(points, hit.group(2), hit.group(3).strip()))
        elif rules and line.startswith(" " * 10):
            # A long description continues, indented, on the next line.
            last = rules[-1]
            rules[-1] = SpamRule(last.points, last.name, f"{last.description} {line.strip()}")
        else:
            break
    return SpamReport(float(match.group(1)), tuple(rules))


def spam_reports(messages: list[bytes], executable: str | None = None) -> list[SpamReport]:
    """SpamAssassin's report for each message (RFC 5322 bytes), in order.

    Raises:
        DriplineError: SpamAssassin is missing, fails, times out or its output
            cannot be read.
    """
    program = executable or spamassassin_path()
    if program is None:
        raise DriplineError("SpamAssassin is not installed (apt-get install spamassassin)")
    if not messages:
        return []
    with tempfile.TemporaryDirectory(prefix="dripline-spam-") as folder:
        home = Path(folder)
        prefs = home / "user_prefs"
        prefs.write_text("", encoding="utf-8")
        inbox = mailbox.mbox(home / "in.mbox")
        for data in messages:
            inbox.add(mailbox.mboxMessage(data))
        inbox.flush()
        inbox.close()
        # Niced: in the preview a score must not slow the page a saved file is reloading.
        nice = ["nice", "-n", "10"] if shutil.which("nice") else []
        command = [
            *nice, program, "-L", "-t", "--mbox", "-p", str(prefs),
            "--cf=use_bayes 0", "--cf=bayes_auto_learn 0", "--cf=report_safe 0",
        ]  # fmt: skip
        try:
            with _ONE_AT_A_TIME, (home / "in.mbox").open("rb") as stdin:
                done = subprocess.run(
                    command,
                    stdin=stdin,
                    capture_output=True,
                    timeout=_TIMEOUT,
                    env={"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                    check=False,
                )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise DriplineError(f"SpamAssassin did not run: {err}") from err
        if done.returncode != 0:
            last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise DriplineError(f"SpamAssassin failed (exit {done.returncode}): {' '.join(last)}")
    return _match_reports(done.stdout.decode("utf-8", "replace"), messages)


def _message_id(data: bytes) -> str:
    match = _MESSAGE_ID.search(
        data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("utf-8", "replace")
    )
    if match is None:
        raise DriplineError("a message for SpamAssassin has no Message-ID")
    return match.group(1)


def _match_reports(output: str, messages: list[bytes]) -> list[SpamReport]:
    """Each message's report; SpamAssassin's mbox mode does not keep the input order.

    A report follows its message in the output, so the first Message-ID after
    the previous report names the message a report belongs to.
    """
    by_id: dict[str, SpamReport] = {}
    previous = 0
    starts = [m.start() for m in _SCORE.finditer(output)]
    for index, start in enumerate(starts):
        found = _MESSAGE_ID.search(output, previous, start)
        end = starts[index + 1] if index + 1 < len(starts) else len(output)
        if found is not None:
            by_id[found.group(1)] = _parse_report(output[start:end])
        previous = start + 1
    reports = []
    for data in messages:
        report = by_id.get(_message_id(data))
        if report is None:
            raise DriplineError("SpamAssassin printed no report for one of the messages")
        reports.append(report)
    return reports
