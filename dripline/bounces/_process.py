"""``dripline bounces process``: classify each message of a bounce mailbox and act on it.

A message is matched to a delivery by its VERP token (the address the bounce was
delivered to, or the complaint's Original-Mail-From), else the Message-ID in the
returned headers, else the failed recipient's address. A report carrying a VERP token
for our return path that our key did not sign (forged, or another installation's) is
never matched by address. Only a message that was both
recognised and matched is recorded and moved; everything else stays exactly where
it is, untouched. The raw message is kept with the event, and its SHA-256 is the
event's external id, so processing a mailbox again (or a copy of the same report)
records nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from ..store import BouncePolicy, BounceReport, record_bounce
from ..tokens import TokenSigner, split_verp_address
from ._classify import Classified, classify
from ._mailbox import BounceMailbox

__all__ = ["MessageOutcome", "ProcessReport", "process_mailbox"]

SOURCE = "mailbox"
log = logging.getLogger("dripline.bounces")


@dataclass(frozen=True)
class MessageOutcome:
    key: str  # the message's place in the mailbox (Maildir file, IMAP UID)
    verdict: str  # "not a bounce", "unmatched", or the action taken (see RecordedBounce)
    classified: Classified | None = None
    event_id: int | None = None
    moved_to: str | None = None


@dataclass
class ProcessReport:
    outcomes: list[MessageOutcome] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(o.verdict == verdict for o in self.outcomes)

    @property
    def processed(self) -> int:
        return sum(o.event_id is not None for o in self.outcomes)


def _delivery_from_token(
    classified: Classified, signer: TokenSigner | None, return_path: str
) -> tuple[int | None, bool]:
    """(the delivery a valid VERP token names, whether a token that failed was seen)."""
    if signer is None or not return_path:
        return None, False
    forged = False
    for address in classified.return_paths:
        token = split_verp_address(address, return_path)
        if token is not None:
            delivery_id = signer.read_return_path_token(token)
            if delivery_id is not None:
                return delivery_id, False
            forged = True
    return None, forged


def process_mailbox(
    engine: Engine,
    mailbox: BounceMailbox,
    *,
    now: datetime,
    signer: TokenSigner | None,
    return_path: str,
    policy: BouncePolicy,
    dry_run: bool = False,
) -> ProcessReport:
    """Read every message of ``mailbox``; record and move each matched bounce or complaint.

    ``dry_run`` decides the same way but changes neither the database nor the mailbox.
    Each message is its own transaction, recorded before it is moved: a crash between
    the two leaves it in place, and the next run finds it recorded ("duplicate") and
    moves it then.
    """
    report = ProcessReport()
    for key, raw in mailbox.messages():
        try:
            classified = classify(raw)
        except Exception as err:  # a parser tripped on hostile mail: leave it, go on
            log.warning(
                "%s: %s: not readable as mail (%r); left in place", mailbox.describe(), key, err
            )
            report.outcomes.append(MessageOutcome(key, "not a bounce"))
            continue
        if classified is None:
            report.outcomes.append(MessageOutcome(key, "not a bounce"))
            continue
        delivery_id, forged = _delivery_from_token(classified, signer, return_path)
        # Sent to our return path with a token our key did not sign: another installation's
        # mail, or a forgery. Only our own (random, unguessable) Message-ID may still match
        # it; the address alone would act on one of our subscribers for someone else's report.
        email = None if forged else classified.email
        bounce = BounceReport(
            kind=classified.kind,
            source=SOURCE,
            email=email,
            status_code=classified.status_code,
            diagnostic=classified.diagnostic,
            external_id=hashlib.sha256(raw).hexdigest(),
            delivery_id=delivery_id,
            message_id=classified.message_id,
            raw=raw.decode("utf-8", "replace"),
        )
        recorded = record_bounce(engine, bounce, now=now, policy=policy, dry_run=dry_run)
        if recorded.action == "unmatched":
            report.outcomes.append(MessageOutcome(key, "unmatched", classified))
            continue
        if recorded.action == "duplicate" and mailbox.already_processed(key):
            report.outcomes.append(MessageOutcome(key, "already processed", classified))
            continue
        moved = None if dry_run else mailbox.move_processed(key)
        report.outcomes.append(
            MessageOutcome(key, recorded.action, classified, recorded.event_id, moved)
        )
    return report
