"""The tables: subscribers, their enrollments in campaigns, and one delivery per step.

Times are stored as naive UTC (``DateTime`` without a zone) so SQLite and
PostgreSQL compare them the same way; the store's public functions take and
return aware UTC datetimes.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "DELIVERY_STATUSES",
    "ENROLLMENT_STATUSES",
    "SUBSCRIBER_STATUSES",
    "Base",
    "CampaignRevision",
    "Delivery",
    "Enrollment",
    "RateLimit",
    "Subscriber",
    "Worker",
    "new_public_key",
]

SUBSCRIBER_STATUSES = ("active", "unsubscribed", "bounced", "pending")
# 'converted': the campaign's goal event was recorded (the rest of the sequence cancelled).
ENROLLMENT_STATUSES = ("active", "unsubscribed", "completed", "converted")
# 'claimed': taken by a worker (deliveries.worker_id) under its lease, not yet given to the
# sender; handed back to 'scheduled' if that worker dies. 'sending': its data is being given
# to the sender now (a small group at a time). 'ambiguous': the server may or may not have
# accepted the message (a lost connection after DATA, or a worker that died while 'sending');
# never retried automatically, since retrying could send it twice (`dripline requeue`).
# 'skipped': the step's `when` was false for the subscriber when it was due; never sent.
DELIVERY_STATUSES = (
    "scheduled",
    "claimed",
    "sending",
    "sent",
    "failed",
    "cancelled",
    "ambiguous",
    "skipped",
)


class Base(DeclarativeBase):
    pass


def new_public_key() -> str:
    """A random key naming a subscriber in links (128 bits; reveals nothing about them)."""
    return secrets.token_urlsafe(16)


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = (UniqueConstraint("email_key", name="uq_subscribers_email_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Lower-cased address with a punycode domain: the uniqueness key.
    email_key: Mapped[str] = mapped_column(String(320))
    email: Mapped[str] = mapped_column(String(320))  # as given (domain in punycode)
    name: Mapped[str] = mapped_column(String(200), default="")
    first_name: Mapped[str] = mapped_column(String(100), default="")
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    consent_at: Mapped[datetime] = mapped_column(DateTime)
    consent_source: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # Names the subscriber in unsubscribe links. Filled by the Python default on Core inserts;
    # rows written another way get one on their first claim (see _queue.py), hence nullable.
    public_key: Mapped[str | None] = mapped_column(
        String(32), nullable=True, unique=True, index=True, default=new_public_key
    )


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("subscriber_id", "campaign", name="uq_enrollment"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    campaign: Mapped[str] = mapped_column(String(100), index=True)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default="active")
    # When the goal event happened (aware UTC in, naive UTC stored); None: not converted.
    converted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_id", name="uq_delivery_step_id"),
        # The claim's order (ORDER BY due_at, id): see migration 0013.
        Index("ix_deliveries_status_due", "status", "due_at", "id"),
        # Bounces and webhooks without a VERP token find their delivery by Message-ID.
        Index("ix_deliveries_message_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    # Position in the sequence as last applied (orders the claim); step_id is the identity.
    step: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[str] = mapped_column(String(100))
    due_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)  # the server's final reply
    # The worker (workers.id) that claimed it; no foreign key: a dead worker's row is deleted
    # while its rows are handed back in the same transaction.
    worker_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # last 'sending'
    # Wall clock when the sender accepted this message (its own time, not the pass's):
    # what a machine click is measured from (dripline.store._tracking).
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # The ledger: what went out, as sent (kept even when the campaign files change later).
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    body_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)  # SHA-256 hex
    campaign_commit: Mapped[str | None] = mapped_column(String(60), nullable=True)
    # Which of the step's A/B ``subjects`` went out (1-based); None: a single subject.
    subject_variant: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # That variant's subject as written in the step file, as its key (dripline.experiments.
    # subject_key; migration 0015): recorded with the variant when the row goes to 'sending',
    # so counts follow the text. None: a single subject, or sent before 0015.
    subject_key: Mapped[str | None] = mapped_column(String(16), nullable=True)


class Worker(Base):
    """A running dispatcher (``dripline run``) and its lease on what it claimed."""

    __tablename__ = "workers"
    # Never reuse an id (SQLite AUTOINCREMENT, migration 0008): a paused worker whose row
    # was deleted must not share its id with a newer worker and send that one's claims.
    __table_args__: ClassVar[dict[str, Any]] = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime)
    lease_expires_at: Mapped[datetime] = mapped_column(DateTime)


class RateLimit(Base):
    """The next free send slot of one relay account, shared by every worker (``?rate=``)."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    next_free: Mapped[float] = mapped_column(Float)  # seconds since the epoch (UTC)


class CampaignRevision(Base):
    """A campaign schedule made live by ``dripline apply`` (or recorded at first use).

    The newest row per campaign is what the database's deliveries follow; ``state``
    holds its schedule and, per step, identity, position, timing and the sample
    rendering `dripline plan` diffs against.
    """

    __tablename__ = "campaign_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(100), index=True)
    applied_at: Mapped[datetime] = mapped_column(DateTime)
    git_commit: Mapped[str | None] = mapped_column(String(60), nullable=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
