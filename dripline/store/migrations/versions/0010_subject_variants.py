"""The A/B subject variant a delivery was sent with (issue 18).

Revision ID: 0010
Revises: 0014
Create Date: 2026-11-29

``deliveries.subject_variant``: which of a step's ``subjects`` (1-based) the subscriber
got, recorded with the rest of the ledger when the message is sent; NULL for steps
with a single subject and for everything sent before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("subject_variant", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("subject_variant")
