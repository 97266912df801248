"""What the step page shows of one rendered message: its document, headers and parts.

The email's HTML is served as its own document for a sandboxed iframe, under a
Content-Security-Policy that lets it load images and inline styles and nothing
else (no scripts, no fetches, no forms), so an email can never act on the
preview. The only change made to it is the colour-scheme switch below; the
Source tab and the ``.eml`` download are the message bytes unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

__all__ = [
    "EMAIL_CSP",
    "SCHEMES",
    "MessageParts",
    "force_color_scheme",
    "message_parts",
]

EMAIL_CSP = (
    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; "
    "font-src https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'; "
    # The same restrictions when someone opens the document on its own, outside the iframe.
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)
SCHEMES = ("light", "dark")

_SCHEME_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*(dark|light)\s*\)", re.IGNORECASE)
# Media conditions that are always / never true, valid wherever the original stood.
_ALWAYS = "(min-width: 0px)"
_NEVER = "(max-width: 0px)"


def force_color_scheme(html: str, scheme: str) -> str:
    """The email as a mail app set to ``scheme`` lays it out, whatever this computer's setting.

    Chromium does not let a page choose ``prefers-color-scheme`` for an iframe, so
    the email's own ``@media (prefers-color-scheme: ...)`` rules are switched on or
    off in its text, and the browser's defaults (scrollbars, unstyled text) follow
    through ``color-scheme``.
    """
    if scheme not in SCHEMES:
        return html

    def switch(match: re.Match[str]) -> str:
        return _ALWAYS if match.group(1).lower() == scheme else _NEVER

    forced = _SCHEME_QUERY.sub(switch, html)
    marker = f"<style>:root {{ color-scheme: {scheme}; }}</style>"
    head_end = re.search(r"</head\s*>", forced, re.IGNORECASE)
    if head_end is None:
        return marker + forced
    return forced[: head_end.start()] + marker + forced[head_end.start() :]


@dataclass(frozen=True)
class MessageParts:
    """The message parsed back the way a mail client reads it."""

    headers: list[tuple[str, str]]  # decoded, in order
    structure: list[str]  # "multipart/alternative", "  text/plain; quoted-printable", ...
    source: str


def _structure(message: EmailMessage, depth: int = 0) -> list[str]:
    line = "  " * depth + message.get_content_type()
    encoding = message.get("Content-Transfer-Encoding")
    charset = message.get_content_charset()
    details = [d for d in (charset, encoding) if d]
    if details:
        line += f" ({', '.join(details)})"
    lines = [line]
    if message.is_multipart():
        for part in message.iter_parts():
            lines += _structure(part, depth + 1)  # type: ignore[arg-type]
    return lines


def message_parts(data: bytes) -> MessageParts:
    """Parse ``data`` (the exact bytes sending would hand the sender)."""
    parsed = message_from_bytes(data, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    headers = [(name, str(value)) for name, value in parsed.items()]
    return MessageParts(headers, _structure(parsed), data.decode("utf-8", errors="replace"))
