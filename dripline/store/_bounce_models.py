"""Tables for mail that comes back after the SMTP session: bounce/complaint events and
the suppression list.

An event is one report (a DSN, an ARF complaint, a provider webhook) matched to a
delivery, with what dripline did about it (``action``) and what it changed
(``changes``), so ``dripline bounces undo`` can put it back. ``(source, external_id)``
is unique: the same report read twice (a replayed webhook, a mailbox processed again)
records nothing new. A suppression is an address that is never enrolled or sent to
again until removed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ._models import Base

__all__ = ["BOUNCE_KINDS", "COMPLAINT", "HARD", "SOFT", "BounceEvent", "Suppression"]

HARD = "hard"  # a permanent failure (5.x.x): the mailbox does not exist
SOFT = "soft"  # a temporary failure (4.x.x): mailbox full, greylisted, ...
COMPLAINT = "complaint"  # an RFC 5965 feedback report or a provider's spam complaint
BOUNCE_KINDS = (HARD, SOFT, COMPLAINT)


class BounceEvent(Base):
    __tablename__ = "bounce_events"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_bounce_events_source_external"),
        Index("ix_bounce_events_email_received", "email_key", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[str | None] = mapped_column(String(16), nullable=True)  # RFC 3463
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True, index=True
    )
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), nullable=True
    )
    email_key: Mapped[str] = mapped_column(String(320))
    source: Mapped[str] = mapped_column(String(100))  # "mailbox", "ses", "postmark", ...
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    matched_by: Mapped[str] = mapped_column(String(16))  # "token", "message-id", "address"
    action: Mapped[str] = mapped_column(String(32))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    raw: Mapped[str] = mapped_column(Text, default="")
    undone_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Suppression(Base):
    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(100))  # "cli", "import:FILE", "bounce", ...
    created_at: Mapped[datetime] = mapped_column(DateTime)
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("bounce_events.id", ondelete="SET NULL"), nullable=True
    )
