"""What the ledger keeps of a sent message: its subject as sent, a body digest, the git commit.

The dispatcher calls these once per message (the subject and digest) and once per
pass (the commit), so they work on the message bytes the fast path built rather
than parsing the whole MIME tree.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from email.header import decode_header, make_header
from functools import lru_cache
from pathlib import Path

__all__ = ["body_digest", "campaign_commit", "sent_subject"]

_SUBJECT = re.compile(
    rb"^Subject:[ \t]*(.*?)\r?\n(?![ \t])", re.MULTILINE | re.DOTALL | re.IGNORECASE
)
_BOUNDARY = re.compile(rb'boundary="([^"]+)"')


def _split(data: bytes) -> tuple[bytes, bytes]:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
        return (data, b"") if end < 0 else (data[:end], data[end + 2 :])
    return data[:end], data[end + 4 :]


def sent_subject(data: bytes) -> str:
    """The ``Subject`` header of RFC 5322 message bytes, decoded (RFC 2047), unfolded."""
    head, _ = _split(data)
    match = _SUBJECT.search(head + b"\r\n")
    if match is None:
        return ""
    return _decoded(match.group(1))


@lru_cache(maxsize=256)
def _decoded(folded: bytes) -> str:
    """A Subject header's value unfolded and decoded; a step's messages mostly share one."""
    raw = re.sub(rb"\r?\n[ \t]", b" ", folded).decode("ascii", "replace")
    try:
        return str(make_header(decode_header(raw)))
    except (ValueError, LookupError):  # a malformed encoded word: keep it as it was sent
        return raw


def body_digest(data: bytes) -> str:
    """SHA-256 (hex) of the message body, its random MIME boundary replaced by a constant.

    Two sends of the same rendering to one subscriber get the same digest, so support
    can tell whether a person received the version now in git.
    """
    head, body = _split(data)
    match = _BOUNDARY.search(head)
    if match is not None:
        body = body.replace(match.group(1), b"BOUNDARY")
    return hashlib.sha256(body).hexdigest()


def campaign_commit(root: Path) -> str | None:
    """The project's git commit (``HEAD``), with ``-dirty`` when ``campaigns/`` or
    ``templates/`` differ from it; None when ``root`` is not in a git repository."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode != 0:
            return None
        changes = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "campaigns", "templates"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()[:40]
    return f"{commit}-dirty" if changes.returncode != 0 or changes.stdout.strip() else commit
