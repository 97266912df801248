"""Step identity on deliveries, the sent-message ledger, and applied campaign revisions.

Revision ID: 0004
Revises: 0008
Create Date: 2026-11-29

Deliveries were tied to a step *number*; from here on they name the step's identity
(its file slug, or front-matter ``id``). Existing rows are mapped by today's
numbering: step N becomes the identity of the campaign's N-th file, read from the
campaigns folder the store was opened with (``config.attributes["campaigns_dir"]``).
A campaign whose folder cannot be found keeps ``step-N``, which ``dripline plan``
then lists as removed rather than guessing.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

from dripline.campaign import step_identities

revision = "0004"
down_revision = "0008"
branch_labels = None
depends_on = None


def _identities(campaigns_dir: Path | None, campaign: str) -> list[str]:
    if campaigns_dir is None:
        return []
    return step_identities(campaigns_dir / campaign)


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("step_id", sa.String(100), nullable=True))
        batch.add_column(sa.Column("subject", sa.Text, nullable=True))
        batch.add_column(sa.Column("body_digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("campaign_commit", sa.String(60), nullable=True))
    connection = op.get_bind()
    deliveries = sa.table(
        "deliveries",
        sa.column("id", sa.Integer),
        sa.column("enrollment_id", sa.Integer),
        sa.column("step", sa.Integer),
        sa.column("step_id", sa.String),
    )
    enrollments = sa.table("enrollments", sa.column("id"), sa.column("campaign"))
    folder = context.config.attributes.get("campaigns_dir")
    campaigns_dir = Path(folder) if folder else None
    for campaign in list(connection.scalars(sa.select(enrollments.c.campaign).distinct())):
        names = _identities(campaigns_dir, campaign)
        steps = list(
            connection.scalars(
                sa.select(deliveries.c.step)
                .join(enrollments, enrollments.c.id == deliveries.c.enrollment_id)
                .where(enrollments.c.campaign == campaign)
                .distinct()
            )
        )
        own = sa.select(enrollments.c.id).where(enrollments.c.campaign == campaign)
        for number in steps:
            identity = names[number - 1] if 0 < number <= len(names) else f"step-{number}"
            connection.execute(
                deliveries.update()
                .where(deliveries.c.step == number, deliveries.c.enrollment_id.in_(own))
                .values(step_id=identity)
            )
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("step_id", existing_type=sa.String(100), nullable=False)
        batch.drop_constraint("uq_delivery_step", type_="unique")
        batch.create_unique_constraint("uq_delivery_step_id", ["enrollment_id", "step_id"])
    op.create_table(
        "campaign_revisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("applied_at", sa.DateTime, nullable=False),
        sa.Column("git_commit", sa.String(60), nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
    )
    op.create_index("ix_campaign_revisions_campaign", "campaign_revisions", ["campaign"])


def downgrade() -> None:
    op.drop_index("ix_campaign_revisions_campaign", table_name="campaign_revisions")
    op.drop_table("campaign_revisions")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_delivery_step_id", type_="unique")
        batch.create_unique_constraint("uq_delivery_step", ["enrollment_id", "step"])
        batch.drop_column("campaign_commit")
        batch.drop_column("body_digest")
        batch.drop_column("subject")
        batch.drop_column("step_id")
