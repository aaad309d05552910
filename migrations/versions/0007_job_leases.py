"""job leases: which worker runs a job's attempt, and its last heartbeat

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00.000000

A running job names the worker process running it and when that worker last said it still
does, so that cancel can end a job whose worker is gone and the reaper can requeue it. The
index serves the reaper's look for running jobs.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("worker", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_state"))
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("worker")
