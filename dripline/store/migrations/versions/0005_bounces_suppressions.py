"""Bounce and complaint events, and the suppression list.

Revision ID: 0005
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounce_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status_code", sa.String(16), nullable=True),
        sa.Column("diagnostic", sa.Text, nullable=False),
        sa.Column(
            "delivery_id",
            sa.Integer,
            sa.ForeignKey("deliveries.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("matched_by", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("undone_at", sa.DateTime, nullable=True),
        sa.UniqueConstraint("source", "external_id", name="uq_bounce_events_source_external"),
    )
    op.create_index("ix_bounce_events_received_at", "bounce_events", ["received_at"])
    op.create_index("ix_bounce_events_delivery_id", "bounce_events", ["delivery_id"])
    op.create_index(
        "ix_bounce_events_email_received", "bounce_events", ["email_key", "received_at"]
    )
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email_key", sa.String(320), nullable=False, unique=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column(
            "event_id",
            sa.Integer,
            sa.ForeignKey("bounce_events.id", ondelete="SET NULL"),
            nullable=True,
        ),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_index("ix_bounce_events_email_received", table_name="bounce_events")
    op.drop_index("ix_bounce_events_delivery_id", table_name="bounce_events")
    op.drop_index("ix_bounce_events_received_at", table_name="bounce_events")
    op.drop_table("bounce_events")
