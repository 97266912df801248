"""An index on ``deliveries.message_id``: a bounce or webhook without a VERP token is
matched to its delivery by the Message-ID it returns, and without the index each such
lookup read the whole deliveries table (millions of rows at scale).

Revision ID: 0007
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_message_id", table_name="deliveries")
