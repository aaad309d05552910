"""endpoint backend url: where an endpoint's pods answer in cluster mode

Revision ID: 0017
Revises: 0010
Create Date: 2026-12-02 16:30:00.000000

The operator reports an InferenceEndpoint's `status.url` (its backend Service in the team
namespace) once it is ready; the gateway in cluster mode forwards the team's calls there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backend_url", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_column("backend_url")
