"""team cluster quota: what the platform admin grants a team on the cluster besides GPUs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 14:00:00.000000

The database is the source of truth for a team's Team resource; the GPU pool, borrowing
limit, CPU, memory and pod caps live beside `gpu_quota` so that an upgrade or a resync
re-applies them instead of resetting them to the operator's defaults.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cluster_quota", sa.JSON(), nullable=False, server_default="{}")
        )


def downgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_column("cluster_quota")
