"""An event's ``external_id`` is unique per subscriber, not across all of them.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29

Two integrations (a shop's order ids, a booking tool's ids) can give the same id to
events of different people; a global unique index dropped the second person's event
as a "replay". The table is rebuilt (the unnamed unique constraint of 0009 cannot be
dropped portably on SQLite) with ``UNIQUE (subscriber_id, external_id)``; every row
is copied, ids kept.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_COLUMNS = "id, subscriber_id, name, occurred_at, received_at, source, external_id, data"


def _rebuild(per_subscriber: bool) -> None:
    unique: list[sa.SchemaItem] = (
        [sa.UniqueConstraint("subscriber_id", "external_id", name="uq_events_subscriber_id")]
        if per_subscriber
        else []
    )
    op.create_table(
        "events_rebuilt",
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
        sa.Column("external_id", sa.String(200), nullable=True, unique=not per_subscriber),
        sa.Column("data", sa.JSON, nullable=False),
        *unique,
    )
    op.execute(f"INSERT INTO events_rebuilt ({_COLUMNS}) SELECT {_COLUMNS} FROM events")
    op.drop_index("ix_events_subscriber_id", table_name="events")
    op.drop_table("events")
    op.rename_table("events_rebuilt", "events")
    op.create_index("ix_events_subscriber_id", "events", ["subscriber_id"])
    if op.get_bind().dialect.name == "postgresql":  # the copied ids: new ones follow them
        op.execute(
            "SELECT setval(pg_get_serial_sequence('events', 'id'), "
            "COALESCE((SELECT MAX(id) FROM events), 0) + 1, false)"
        )


def upgrade() -> None:
    _rebuild(per_subscriber=True)


def downgrade() -> None:
    # Rows sharing an id between subscribers cannot all stay under a global unique id.
    op.execute(
        "DELETE FROM events WHERE external_id IS NOT NULL AND id NOT IN "
        "(SELECT MIN(id) FROM events WHERE external_id IS NOT NULL GROUP BY external_id)"
    )
    _rebuild(per_subscriber=False)
