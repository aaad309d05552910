"""routing change notices: NOTIFY when what the gateway looks up changes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 19:30:00.000000

The inference gateway caches who may call which model (tailor/gateway.py) and empties its
cache on these notices, sent on `tailor_routing_<schema>` so that deployments sharing a
database in separate schemas do not empty each other's caches. Each trigger names exactly
the columns the gateway reads, so that recording a token's last use (once a minute per
token) does not empty every gateway's cache. PostgreSQL only: on SQLite the gateway reads
per request.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL_PREFIX = "tailor_routing_"
FUNCTION = "tailor_routing_changed"

# table -> the events that change a lookup's answer
EVENTS = {
    "api_tokens": "UPDATE OF token_hash, user_id, team_id, scopes, expires_at, revoked_at"
    " OR DELETE",
    "teams": "UPDATE OF id, slug OR DELETE",
    "memberships": "INSERT OR UPDATE OR DELETE",
    "endpoints": "INSERT OR UPDATE OR DELETE",
    "adapter_versions": "UPDATE OF id, prefix OR DELETE",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL_PREFIX}' || TG_TABLE_SCHEMA, TG_TABLE_NAME);
            RETURN NULL;
        END $$
        """
    )
    for table, events in EVENTS.items():
        op.execute(
            f"CREATE TRIGGER {table}_routing_changed AFTER {events} OR TRUNCATE ON {table}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in EVENTS:
        op.execute(f"DROP TRIGGER {table}_routing_changed ON {table}")
    op.execute(f"DROP FUNCTION {FUNCTION}()")
