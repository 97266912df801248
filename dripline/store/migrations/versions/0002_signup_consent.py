"""Double opt-in: subscriber public keys, sign-up requests and consent records.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("public_key", sa.String(32), nullable=True))
    # Existing subscribers get their random key now, so their links work from the next send.
    subscribers = sa.table("subscribers", sa.column("id", sa.Integer), sa.column("public_key"))
    connection = op.get_bind()
    ids = list(connection.scalars(sa.select(subscribers.c.id)))
    if ids:
        connection.execute(
            subscribers.update()
            .where(subscribers.c.id == sa.bindparam("row_id"))
            .values(public_key=sa.bindparam("new_key")),
            [{"row_id": i, "new_key": secrets.token_urlsafe(16)} for i in ids],
        )
    op.create_index("ix_subscribers_public_key", "subscribers", ["public_key"], unique=True)
    op.create_table(
        "signup_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("first_name", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("form", sa.String(300), nullable=False),
        sa.Column("consent_text", sa.Text, nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("email_sent", sa.Boolean, nullable=False),
        sa.Column("confirmed_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_signup_requests_key", "signup_requests", ["key"], unique=True)
    op.create_index(
        "ix_signup_requests_email_created", "signup_requests", ["email_key", "created_at"]
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "signup_request_id",
            sa.Integer,
            sa.ForeignKey("signup_requests.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("given_at", sa.DateTime, nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(500), nullable=False),
        sa.Column("form", sa.String(300), nullable=False),
        sa.Column("consent_text", sa.Text, nullable=False),
    )
    op.create_index("ix_consents_subscriber_id", "consents", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_consents_subscriber_id", table_name="consents")
    op.drop_table("consents")
    op.drop_index("ix_signup_requests_email_created", table_name="signup_requests")
    op.drop_index("ix_signup_requests_key", table_name="signup_requests")
    op.drop_table("signup_requests")
    op.drop_index("ix_subscribers_public_key", table_name="subscribers")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("public_key")
