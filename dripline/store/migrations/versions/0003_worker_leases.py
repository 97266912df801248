"""Worker leases: a row per running dispatcher, claimed deliveries owned by one, shared rates.

Revision ID: 0003
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False),
        sa.Column("lease_expires_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("next_free", sa.Float, nullable=False),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("worker_id", sa.Integer, nullable=True))
        batch.add_column(sa.Column("attempted_at", sa.DateTime, nullable=True))
    # Before leases a crash left rows in 'sending' for good, with no owner to ask: their
    # fate is unknown, which is what 'ambiguous' says (`dripline requeue --ambiguous`).
    deliveries = sa.table(
        "deliveries", sa.column("status", sa.String), sa.column("last_error", sa.Text)
    )
    op.get_bind().execute(
        deliveries.update()
        .where(deliveries.c.status == "sending")
        .values(status="ambiguous", last_error="left in 'sending' by a crash before leases")
    )


def downgrade() -> None:
    deliveries = sa.table("deliveries", sa.column("status", sa.String))
    op.get_bind().execute(
        deliveries.update().where(deliveries.c.status == "claimed").values(status="scheduled")
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("attempted_at")
        batch.drop_column("worker_id")
    op.drop_table("rate_limits")
    op.drop_table("workers")
