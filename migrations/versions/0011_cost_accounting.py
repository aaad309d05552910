"""cost accounting: what jobs and endpoints used, GPU prices, team budgets, estimates

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 16:30:00.000000

A job keeps what it used (`usage`: GPU type, GPUs, GPU- and CPU-seconds) and, for a
fine-tune, what it was expected to cost (`estimate`). Prices are a history per GPU type, so
a job is priced at what its GPU type cost when it ended. A team's monthly budget has a soft
limit (a warning) and a hard limit (no new training). An endpoint's running stretches
(replicas × GPUs, from publication to the next change) give its GPU-hours.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("usage", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("estimate", sa.JSON(), nullable=False, server_default="{}"))
    op.create_table(
        "gpu_prices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gpu_type", sa.String(length=63), nullable=False),
        sa.Column("price_per_gpu_hour", sa.Double(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_gpu_prices_type_from", "gpu_prices", ["gpu_type", "effective_from"])
    op.create_table(
        "team_budgets",
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("soft_limit", sa.Double(), nullable=True),
        sa.Column("hard_limit", sa.Double(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("team_id"),
    )
    op.create_table(
        "endpoint_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=100), nullable=False),
        sa.Column("gpu_type", sa.String(length=63), nullable=True),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.Column("gpus_per_replica", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_endpoint_usage_team_started", "endpoint_usage", ["team_id", "started_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_endpoint_usage_team_started", table_name="endpoint_usage")
    op.drop_table("endpoint_usage")
    op.drop_table("team_budgets")
    op.drop_index("ix_gpu_prices_type_from", table_name="gpu_prices")
    op.drop_table("gpu_prices")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("estimate")
        batch_op.drop_column("usage")
