"""harvest parts: a harvest fanned out over the workers, one row per repository

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 16:10:00.000000

A part is claimed by the worker running it (worker identity and heartbeat, as jobs are), so
a part whose worker died is taken over and one failed repository fails only its part.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "harvest_parts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("repository", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=4000), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "index"),
    )
    op.create_index(
        op.f("ix_harvest_parts_job_id"), "harvest_parts", ["job_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_harvest_parts_job_id"), table_name="harvest_parts")
    op.drop_table("harvest_parts")
