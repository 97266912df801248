"""When the sender accepted each sent message (issue 16, machine clicks).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29

``deliveries.accepted_at``: the wall-clock time (UTC) the sender reported this message
accepted (the relay's reply to its data, or the end of its chunk for a sender that
reports only then). ``sent_at`` stays the dispatch pass's clock; a click within seconds
of ``accepted_at`` is a machine's (a gateway scanning the message on arrival), however
long the pass ran. NULL for messages sent before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("accepted_at", sa.DateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("accepted_at")
