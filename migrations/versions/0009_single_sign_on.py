"""single sign-on: identities, group mappings, pending sign-ins, session kinds

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 14:00:00.000000

A person signed in through the OpenID Connect provider is linked to a user by issuer and
subject; group mappings give teams and roles from the provider's groups, and the memberships
they make are marked `groups` (manual ones are never touched). A sign-in on its way through
the provider waits in `sign_in_requests` until it comes back, once. A web session can now be
a CLI session, and one that made its own token revokes it when it ends.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = sa.Enum("owner", "admin", "member", "viewer", name="role", native_enum=False, length=16)


def upgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=16), nullable=False, server_default="manual")
        )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="console")
        )
        batch_op.add_column(
            sa.Column("owns_token", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_identities_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("issuer", "subject", name=op.f("uq_identities_issuer")),
    )
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identities_user_id"), ["user_id"], unique=False)
    op.create_table(
        "group_mappings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_name", sa.String(length=255), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("role", ROLE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_group_mappings_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_mappings")),
        sa.UniqueConstraint("group_name", "team_id", name=op.f("uq_group_mappings_group_name")),
    )
    with op.batch_alter_table("group_mappings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_mappings_team_id"), ["team_id"], unique=False)
    op.create_table(
        "sign_in_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("browser_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("next_path", sa.String(length=2000), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_requests")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_sign_in_requests_state_hash")),
    )


def downgrade() -> None:
    op.drop_table("sign_in_requests")
    with op.batch_alter_table("group_mappings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_mappings_team_id"))
    op.drop_table("group_mappings")
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identities_user_id"))
    op.drop_table("identities")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_column("owns_token")
        batch_op.drop_column("kind")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("source")
