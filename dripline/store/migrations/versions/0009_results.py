"""Results: tracked links, clicks, opens, goal events, and converted enrollments.

Revision ID: 0009
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0004"
branch_labels = None
depends_on = None


def _delivery_fk() -> sa.Column[int]:
    return sa.Column(
        "delivery_id",
        sa.Integer,
        sa.ForeignKey("deliveries.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "tracked_links",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("step_id", sa.String(100), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.UniqueConstraint("campaign", "step_id", "position", name="uq_tracked_links_position"),
    )
    op.create_table(
        "clicks",
        sa.Column("id", sa.Integer, primary_key=True),
        _delivery_fk(),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("clicked_at", sa.DateTime, nullable=False),
        sa.Column("user_agent_class", sa.String(16), nullable=False),
        sa.Column("machine", sa.Boolean, nullable=False),
    )
    op.create_index("ix_clicks_delivery_id", "clicks", ["delivery_id"])
    op.create_table(
        "opens",
        sa.Column("id", sa.Integer, primary_key=True),
        _delivery_fk(),
        sa.Column("opened_at", sa.DateTime, nullable=False),
        sa.Column("user_agent_class", sa.String(16), nullable=False),
        sa.Column("machine", sa.Boolean, nullable=False),
    )
    op.create_index("ix_opens_delivery_id", "opens", ["delivery_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("occurred_at", sa.DateTime, nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True, unique=True),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_events_subscriber_id", "events", ["subscriber_id"])
    with op.batch_alter_table("enrollments") as batch:
        batch.add_column(sa.Column("converted_at", sa.DateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_column("converted_at")
    for table in ("events", "opens", "clicks", "tracked_links"):
        op.drop_table(table)
