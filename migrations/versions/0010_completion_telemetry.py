"""completion telemetry: served completions and what editors did with them

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 14:20:00.000000

Each completion the gateway serves is a row (no code text), and each view, select or dismiss
event an editor reports against its id another. A team may opt in to keeping the code text
(redacted) with its completions. The (team, created_at) index serves the
team's statistics and the retention purge.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "telemetry_keeps_code", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    op.create_table(
        "served_completions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("route", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=64), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("prompt_text", sa.Text(), nullable=True),
        sa.Column("completion_text", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["version_id"], ["adapter_versions.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_served_completions_team_created",
        "served_completions",
        ["team_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "completion_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("completion_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("choice_index", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["completion_id"], ["served_completions.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_completion_events_completion_id"),
        "completion_events",
        ["completion_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_completion_events_completion_id"), table_name="completion_events")
    op.drop_table("completion_events")
    op.drop_index("ix_served_completions_team_created", table_name="served_completions")
    op.drop_table("served_completions")
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_column("telemetry_keeps_code")
