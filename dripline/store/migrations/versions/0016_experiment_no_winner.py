"""An A/B test's "no significant difference" is recorded too (issue 18).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30

A step's test is judged once (one look, after the click window): the decision is a row
of ``experiment_winners`` whatever it is. ``variant`` and ``subject`` become nullable:
NULL means judged with no significant difference (the split goes on, and the step is
never judged again); z, p_value, tallies and decided_at are kept as for a winner.
Downgrading deletes those rows (the older code would judge the step again).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("experiment_winners") as batch:
        batch.alter_column("variant", existing_type=sa.Integer, nullable=True)
        batch.alter_column("subject", existing_type=sa.Text, nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM experiment_winners WHERE variant IS NULL")
    with op.batch_alter_table("experiment_winners") as batch:
        batch.alter_column("variant", existing_type=sa.Integer, nullable=False)
        batch.alter_column("subject", existing_type=sa.Text, nullable=False)
