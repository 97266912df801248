"""The claim's index ends with the delivery id: ``(status, due_at, id)``.

Revision ID: 0013
Revises: 0009
Create Date: 2026-11-29

A claim takes the oldest due rows, ``ORDER BY due_at, id LIMIT n``. With an index on
``(status, due_at)`` only, PostgreSQL had to join and sort *every* due row to find
the first ``n`` whenever many rows share a due time (a whole list enrolled at once,
a step due at 9:00 local): about 115 ms per claim of 500 with 10,000 due rows,
growing with the queue. With ``id`` in the index the scan delivers rows in the
claim's order and stops after ``n``. (SQLite's index already ends with the rowid,
which is ``id``: the new index is the same order there.)
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_status_due", table_name="deliveries")
    op.create_index("ix_deliveries_status_due", "deliveries", ["status", "due_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_status_due", table_name="deliveries")
    op.create_index("ix_deliveries_status_due", "deliveries", ["status", "due_at"])
