"""A/B variants known by their subject text (issue 18, probe-18b HIGH 1, MEDIUM 2).

Revision ID: 0015
Revises: 0012
Create Date: 2026-11-30

``deliveries.subject_key``: the first 16 hex digits of SHA-256 of the A/B variant's
subject as written in the step file (before rendering), recorded with the variant number
when the delivery goes to ``sending``, so counts follow the text (a reordered list keeps
them) and an ``ambiguous`` row says which subject may have arrived. Rows sent before this
revision keep NULL (counted under the variant number of the step's list as it is now).
``experiment_winners.subject_key``: the same key of the winning text (NULL for winners
decided before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("subject_key", sa.String(16), nullable=True))
    with op.batch_alter_table("experiment_winners") as batch:
        batch.add_column(sa.Column("subject_key", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiment_winners") as batch:
        batch.drop_column("subject_key")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("subject_key")
