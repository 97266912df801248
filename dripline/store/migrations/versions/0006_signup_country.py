"""Sign-up requests carry the country picked on the form (for public holidays).

A subscriber's country itself lives in ``subscribers.attributes`` (JSON, key
``country``), like any CSV column; the request needs its own column because the
subscriber row is only updated on confirmation.

Revision ID: 0006
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signup_requests") as batch:
        batch.add_column(sa.Column("country", sa.String(2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signup_requests") as batch:
        batch.drop_column("country")
