"""Bounces and complaints that arrive after the SMTP session, read from a bounce mailbox.

:func:`classify` tells DSNs (RFC 3464), non-standard bounces (via ``flufl.bounce``)
and ARF complaints (RFC 5965) from everything else; :func:`process_mailbox` matches
them to deliveries and records them (:func:`dripline.store.record_bounce`) from a
:class:`MaildirMailbox` or an :class:`ImapMailbox`.
"""

from __future__ import annotations

from ._classify import Classified, classify
from ._mailbox import (
    DEFAULT_IMAP_FOLDER,
    BounceMailbox,
    ImapMailbox,
    MailboxError,
    MaildirMailbox,
    parse_imap_url,
)
from ._process import MessageOutcome, ProcessReport, process_mailbox

__all__ = [
    "DEFAULT_IMAP_FOLDER",
    "BounceMailbox",
    "Classified",
    "ImapMailbox",
    "MailboxError",
    "MaildirMailbox",
    "MessageOutcome",
    "ProcessReport",
    "classify",
    "parse_imap_url",
    "process_mailbox",
]
