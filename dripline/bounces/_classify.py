"""Telling bounces and complaints from everything else in a bounce mailbox.

- An RFC 5965 ARF feedback report (``multipart/report; report-type=feedback-report``)
  is a complaint.
- An RFC 3464 delivery status notification, or a non-standard bounce that
  :mod:`flufl.bounce` (GNU Mailman's detectors: Exim, Exchange, qmail, ...)
  recognises, is a bounce: hard for a 5.x.x status (or a permanent failure), soft
  for 4.x.x (a relay giving up on a full mailbox). Delay warnings ("Action: delayed")
  are not bounces: the relay is still trying. A non-standard bounce counts only when
  it comes from a mailer (a null return path, or a MAILER-DAEMON/postmaster sender),
  so flufl's looser heuristics never turn a person's reply into one.
- A report counts only as the message itself: RFC 6522 makes ``multipart/report`` the
  top-level type, so a DSN or ARF report forwarded inside another message (a mailing-list
  digest, a colleague's "look what I got") is not ours to act on.
- Anything else (vacation notices, other auto-replies, people replying) is ``None``:
  the caller leaves it alone.
"""

from __future__ import annotations

import email
import email.policy
import logging
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

from ..store import COMPLAINT, HARD, SOFT

__all__ = ["Classified", "classify"]

# flufl.bounce logs a traceback for any detector that trips on odd mail and re-raises;
# process_mailbox reports that message in one line and leaves it, so keep the traceback
# off the user's terminal.
logging.getLogger("flufl.bounce").propagate = False
logging.getLogger("flufl.bounce").addHandler(logging.NullHandler())

# Where the envelope recipient of the bounce (our VERP address) shows up once delivered.
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
_MAILER_LOCAL_PARTS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"}


@dataclass(frozen=True)
class Classified:
    """A bounce or complaint as read from one message."""

    kind: str  # HARD, SOFT or COMPLAINT
    email: str | None  # the recipient that failed or complained
    status_code: str | None  # RFC 3463, e.g. "5.1.1"
    diagnostic: str
    message_id: str | None  # of our original message, from the returned headers
    # Addresses that may be our VERP return path (delivered-to, original mail from, ...).
    return_paths: tuple[str, ...] = field(default=())


_REPORT_PARTS = ("message/delivery-status", "message/feedback-report")


def _parse(raw: bytes) -> Message:
    # Decoded as UTF-8 (bad bytes replaced) rather than by message_from_bytes: raw 8-bit
    # header bytes would otherwise come back as Header objects, which flufl.bounce's
    # detectors (and parseaddr) cannot handle; for ASCII mail the two parse the same.
    return email.message_from_string(raw.decode("utf-8", "replace"), policy=email.policy.compat32)


def _report_parts(msg: Message) -> list[Message]:
    """The parts of a top-level ``multipart/report`` (RFC 6522 section 3), else none."""
    if msg.get_content_type() != "multipart/report":
        return []
    payload = msg.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _forwarded_report(msg: Message, parts: list[Message]) -> bool:
    """True when a DSN or ARF part sits deeper than the top-level report (forwarded mail)."""
    own = {id(p) for p in parts}
    return any(p.get_content_type() in _REPORT_PARTS and id(p) not in own for p in msg.walk())


def _returned_headers(msg: Message, parts: list[Message]) -> Message | None:
    """The headers of our original message, when the report carries them."""
    for part in parts or msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        elif kind == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            return HeaderParser().parsestr(text.decode("utf-8", "replace"))
    return None


def _clean(value: object) -> str:
    return " ".join(str(value or "").split())


def _typed_address(value: str | None) -> str | None:
    """``rfc822; ada@example.org`` (RFC 3464 address types) or a bare address."""
    if not value:
        return None
    _, _, address = value.rpartition(";")
    address = parseaddr(address.strip())[1] or address.strip().strip("<>")
    return address or None


def _envelope_addresses(msg: Message, returned: Message | None) -> list[str]:
    found: list[str] = []
    for name in _ENVELOPE_HEADERS:
        found += [a for _, a in getaddresses(msg.get_all(name, [])) if a]
    if returned is not None:
        found += [a for _, a in getaddresses(returned.get_all("Return-Path", [])) if a]
    return found


def _complaint(msg: Message, parts: list[Message], returned: Message | None) -> Classified | None:
    report = next((p for p in parts if p.get_content_type() == "message/feedback-report"), None)
    if report is None:
        return None
    payload = report.get_payload()
    fields = payload[0] if isinstance(payload, list) and payload else None
    if fields is None:  # an unparsed body: read it as header lines
        fields = HeaderParser().parsestr(str(payload))
    recipient = _typed_address(fields.get("Original-Rcpt-To")) or _typed_address(
        fields.get("Removal-Recipient")
    )
    if recipient is None and returned is not None:
        recipient = parseaddr(returned.get("To", ""))[1] or None
    paths = _envelope_addresses(msg, returned)
    mail_from = _typed_address(fields.get("Original-Mail-From"))
    if mail_from:
        paths.insert(0, mail_from)
    feedback = _clean(fields.get("Feedback-Type")) or "abuse"
    return Classified(
        kind=COMPLAINT,
        email=recipient,
        status_code=None,
        diagnostic=f"feedback-type: {feedback}",
        message_id=_clean(returned.get("Message-ID")) or None if returned is not None else None,
        return_paths=tuple(dict.fromkeys(paths)),
    )


def _status_blocks(parts: list[Message]) -> list[Message]:
    blocks: list[Message] = []
    for part in parts:
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                blocks += [b for b in payload if b.get("Action") or b.get("Status")]
    return blocks


def _from_a_mailer(msg: Message) -> bool:
    if msg.get("Return-Path", "").strip() == "<>":
        return True
    local = parseaddr(msg.get("From", ""))[1].partition("@")[0].lower()
    return local in _MAILER_LOCAL_PARTS


def classify(raw: bytes) -> Classified | None:
    """Read one message: a bounce, a complaint, or ``None`` for anything else."""
    msg = _parse(raw)
    parts = _report_parts(msg)
    if _forwarded_report(msg, parts):
        return None  # someone passed a report on: a person should read it
    returned = _returned_headers(msg, parts)
    complaint = _complaint(msg, parts, returned)
    if complaint is not None:
        return complaint
    blocks = _status_blocks(parts)
    if not blocks and not _from_a_mailer(msg):
        # flufl's heuristics only count for mail a mailer sent; not running them on the
        # rest also keeps a huge human message from being scanned line by line.
        return None
    temporary, permanent = all_failures(msg)
    if not blocks and not (temporary or permanent):
        return None
    failing = [b for b in blocks if _clean(b.get("Action")).lower().startswith(("fail", "error"))]
    if blocks and not failing:
        # "delivered", "relayed", "expanded": success notices; "delayed": a warning while the
        # relay keeps trying (it may still arrive). None of them is a bounce.
        return None
    status = _clean(failing[0].get("Status")).split(" ")[0] if failing else ""
    if status[:1] == "5" or (not status and permanent):
        kind = HARD
    elif status[:1] == "4" or temporary:
        kind = SOFT
    else:
        kind = HARD if permanent else SOFT
    recipient = None
    diagnostic = ""
    if failing:
        recipient = _typed_address(failing[0].get("Final-Recipient")) or _typed_address(
            failing[0].get("Original-Recipient")
        )
        diagnostic = _clean(failing[0].get("Diagnostic-Code"))
    if recipient is None:
        addresses = sorted(permanent or temporary)
        recipient = addresses[0].decode("ascii", "replace") if addresses else None
    if not diagnostic:
        diagnostic = _clean(msg.get("Subject"))
    return Classified(
        kind=kind,
        email=recipient,
        status_code=status or None,
        diagnostic=diagnostic,
        message_id=(_clean(returned.get("Message-ID")) or None) if returned is not None else None,
        return_paths=tuple(dict.fromkeys(_envelope_addresses(msg, returned))),
    )
