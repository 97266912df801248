"""What an SMTP reply means for one message: sent, try again later, or never.

The rules (issue 4), applied per phase of the transaction:

- 2xx after the message data: sent; keep the reply, the queue id ("queued as X")
  and the RFC 3463 enhanced status code.
- 4xx anywhere (421 included), timeouts and dropped connections: transient.
  A drop or timeout *after the whole message was sent and before the reply* is
  transient **and ambiguous**: the server may have queued it, so the dispatcher
  must not resend it by default.
- 5xx: permanent for this message. It is a *bounce* (the subscriber's mailbox is
  dead) when the enhanced status is 5.1.x about the recipient, or the reply to
  RCPT is 550 without an enhanced status that blames something other than the
  address or mailbox (a "550 5.7.1 relaying denied" is our relay's policy, and
  marking every subscriber bounced because of it would be a disaster).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from .base import PermanentSendError, SendError, SendResult, TransientSendError

__all__ = [
    "Phase",
    "Reply",
    "enhanced_status",
    "error_for_reply",
    "queue_id",
    "result_for_reply",
]

# RFC 3463: class.subject.detail, the class matching the reply's first digit.
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")
# Postfix, Exim, Sendmail and most relays: "queued as 4Fq2x7"; some say "id=".
_QUEUE_ID = re.compile(r"\bqueued as\s+<?([A-Za-z0-9][A-Za-z0-9._@-]*)>?|\bid=([A-Za-z0-9._-]+)")
# Enhanced statuses that name the *sender's* address, never the subscriber's.
_SENDER_ADDRESS_STATUSES = frozenset({"5.1.7", "5.1.8"})


class Phase(Enum):
    """Where in the transaction a reply (or failure) came."""

    CONNECT = "connect"
    MAIL = "MAIL FROM"
    RCPT = "RCPT TO"
    DATA = "DATA"
    MESSAGE = "end of message data"
    RSET = "RSET"


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: the code and its text lines joined by newlines."""

    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()

    @property
    def closing(self) -> bool:
        """421: the server is closing this connection."""
        return self.code == 421


def enhanced_status(reply: Reply) -> str | None:
    """The RFC 3463 status (``"5.1.1"``) at the start of the reply, when its class fits."""
    match = _ENHANCED.match(reply.text)
    if match and match.group(1) == str(reply.code)[0]:
        return ".".join(match.groups())
    return None


def queue_id(reply: Reply) -> str | None:
    """The server's queue id for an accepted message, if the reply names one."""
    match = _QUEUE_ID.search(reply.text)
    if not match:
        return None
    return match.group(1) or match.group(2)


def result_for_reply(message_id: str, reply: Reply) -> SendResult:
    """The :class:`SendResult` of a 2xx reply to the end of message data."""
    return SendResult(
        message_id=message_id,
        reply=str(reply),
        queue_id=queue_id(reply),
        code=reply.code,
        enhanced_status=enhanced_status(reply),
    )


def _is_bounce(phase: Phase, reply: Reply, status: str | None) -> bool:
    if phase is Phase.MAIL:  # a refused MAIL FROM is about us, not the subscriber
        return False
    if status is not None and status.startswith("5.1."):
        return status not in _SENDER_ADDRESS_STATUSES
    if phase is Phase.RCPT and reply.code == 550:
        # 5.1.x (address) or 5.2.x (mailbox) confirm it; 5.7.x (policy) etc. do not.
        return status is None or status.startswith("5.2.")
    return False


def error_for_reply(phase: Phase, reply: Reply, recipient: str | None = None) -> SendError:
    """The exception for a non-success reply in ``phase``."""
    status = enhanced_status(reply)
    about = f" for {recipient}" if recipient else ""
    text = f"{phase.value}{about} refused: {reply}"
    if 400 <= reply.code < 500:
        return TransientSendError(text, code=reply.code, enhanced_status=status, reply=str(reply))
    if 500 <= reply.code < 600:
        return PermanentSendError(
            text,
            bounce=_is_bounce(phase, reply, status),
            code=reply.code,
            enhanced_status=status,
            reply=str(reply),
        )
    # Anything else is a confused server: trying again later is the safe answer.
    return TransientSendError(
        f"{phase.value}{about}: unexpected reply {reply}", code=reply.code, reply=str(reply)
    )
