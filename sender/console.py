"""``console:``: prints each message (headers and the plain-text part) instead of sending it.

For trying a campaign out in a terminal: nothing leaves the machine and the HTML
part, unreadable as source, is summarised in one line.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Self, TextIO

from .base import OutgoingMessage, Sender, SendResult

__all__ = ["ConsoleSender"]

_RULE = "-" * 72


class ConsoleSender(Sender):
    """Writes every message to ``stream`` (stdout by default), one block per message."""

    schemes = ("console",)
    reaches_recipients = False  # printed to a terminal

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream
        self._count = 0
        self._lock = threading.Lock()  # one block per message even from several threads

    @classmethod
    def from_url(cls, url: str, *, secrets: Mapping[str, str] | None = None) -> Self:
        return cls()

    @property
    def display_url(self) -> str:
        return "console:"

    def _send(self, message: OutgoingMessage) -> SendResult:
        parsed = BytesParser(policy=policy.default).parsebytes(message.data)
        assert isinstance(parsed, EmailMessage)  # policy.default parses to EmailMessage
        block = _format(message, parsed)
        stream = self._stream if self._stream is not None else sys.stdout
        with self._lock:
            stream.write(block)
            stream.flush()
            self._count += 1
            number = self._count
        return SendResult(
            message_id=message.message_id,
            reply=f"250 printed to the console as #{number}",
            queue_id=str(number),
            code=250,
        )


def _format(message: OutgoingMessage, parsed: EmailMessage) -> str:
    lines = [_RULE, f"Envelope: {message.envelope_from} -> {', '.join(message.recipients)}"]
    lines += [f"{name}: {value}" for name, value in parsed.items()]
    lines.append("")
    text_part = parsed.get_body(preferencelist=("plain",))
    if text_part is not None and isinstance(text_part, EmailMessage):
        # The wire format's CRLF survives decoding; a terminal wants plain newlines.
        lines.append(text_part.get_content().replace("\r\n", "\n").rstrip("\n"))
    else:
        lines.append("(no text/plain part)")
    html_part = parsed.get_body(preferencelist=("html",))
    if html_part is not None and isinstance(html_part, EmailMessage):
        size = len(html_part.get_content())
        lines.append(f"[text/html part: {size} characters, not shown]")
    lines += [_RULE, ""]
    return "\n".join(lines)
