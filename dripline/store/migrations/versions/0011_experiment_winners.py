"""The winner of an A/B subject test, decided once (issue 18).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29

``experiment_winners``: one row per (campaign, step identity) whose A/B test
(``[experiment] winner_after``) found a significant difference in people's click
rates: the winning variant (1-based) and its subject as written, when it was decided,
the z statistic and p-value, and each variant's counts at that moment. The unique key
makes the decision once: a second worker's insert finds the row and uses it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiment_winners",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("step_id", sa.String(100), nullable=False),
        sa.Column("variant", sa.Integer, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("decided_at", sa.DateTime, nullable=False),
        sa.Column("z", sa.Float, nullable=False),
        sa.Column("p_value", sa.Float, nullable=False),
        sa.Column("tallies", sa.JSON, nullable=False),
        sa.UniqueConstraint("campaign", "step_id", name="uq_experiment_winners_step"),
    )


def downgrade() -> None:
    op.drop_table("experiment_winners")
