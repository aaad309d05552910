"""endpoint repository context: on/off and the token budget of retrieved code per endpoint

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 16:30:00.000000

The gateway places definitions and similar code from the team's index (built from its latest
dataset) before a completion's prompt, within this many tokens; a team turns it off or resizes it
per endpoint. Existing endpoints get the default (on, 256 tokens): without an index nothing changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("context_enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(
            sa.Column("context_tokens", sa.Integer(), nullable=False, server_default="256")
        )


def downgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("context_tokens")
        batch_op.drop_column("context_enabled")
