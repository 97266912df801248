"""Tables for results: tracked links, clicks, opens and goal events.

A tracked link is one URL of one step at a stable position: positions are only ever
added (an edited URL gets a new one), so a click token in an old email still finds
the URL that email carried. Clicks and opens keep the time and a user-agent class,
never the IP address or the user-agent string. ``machine`` marks what a program did
(a link scanner, a mail-security proxy, a click within seconds of delivery); reports
count people's clicks apart from those. An event's ``external_id`` is unique per
subscriber, so a replayed event records nothing new.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ._models import Base

__all__ = ["Click", "ExperimentWinner", "GoalEvent", "Open", "TrackedLink"]


class TrackedLink(Base):
    __tablename__ = "tracked_links"
    __table_args__ = (
        UniqueConstraint("campaign", "step_id", "position", name="uq_tracked_links_position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(100))
    step_id: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)


class Click(Base):
    __tablename__ = "clicks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    clicked_at: Mapped[datetime] = mapped_column(DateTime)
    user_agent_class: Mapped[str] = mapped_column(String(16))
    machine: Mapped[bool] = mapped_column(Boolean)


class Open(Base):
    __tablename__ = "opens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    opened_at: Mapped[datetime] = mapped_column(DateTime)
    user_agent_class: Mapped[str] = mapped_column(String(16))
    machine: Mapped[bool] = mapped_column(Boolean)


class GoalEvent(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "external_id", name="uq_events_subscriber_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    source: Mapped[str] = mapped_column(String(16))  # "cli" or "api"
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ExperimentWinner(Base):
    """An A/B subject test's one decision (migration 0011): one row per step, ever; the
    variant it chose, or none (variant and subject NULL, migration 0016)."""

    __tablename__ = "experiment_winners"
    __table_args__ = (UniqueConstraint("campaign", "step_id", name="uq_experiment_winners_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(100))
    step_id: Mapped[str] = mapped_column(String(100))
    # 1-based, as deliveries.subject_variant; NULL: judged, no significant difference.
    variant: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)  # the winner as written
    # Its key (migration 0015; None for a winner decided before, or no winner):
    # deliveries.subject_key.
    subject_key: Mapped[str | None] = mapped_column(String(16), nullable=True)
    decided_at: Mapped[datetime] = mapped_column(DateTime)
    z: Mapped[float] = mapped_column(Float)
    p_value: Mapped[float] = mapped_column(Float)
    # Each variant's counts when it was decided: [{"variant", "sent", "clicks"}, ...].
    tallies: Mapped[list[dict[str, int]]] = mapped_column(JSON)
