"""PostgreSQL tells every replica what changed: a ``NOTIFY`` on each write of a model, a
deployment revision or an API token.

Revision ID: replicas01
Revises: serving01
Create Date: 2026-11-30

The triggers send, on the channel ``mlwarden_changes`` and once the writing transaction
commits, ``model:<name>`` for a model or any of its deployment revisions and ``token:<name>``
for an API token (``store.changes`` listens). A trigger rather than a ``NOTIFY`` in the
repository: every writer is covered, the agent of another replica and a person's SQL alike.
SQLite has no notifications and runs one server process: nothing is created there.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "replicas01"
down_revision: str | Sequence[str] | None = "serving01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the same text as store.changes.CHANNEL; a migration never imports the code it migrates for
CHANNEL = "mlwarden_changes"
WATCHED = ("models", "deployment_revisions", "api_tokens")

FUNCTION = f"""
CREATE OR REPLACE FUNCTION mlwarden_notify_change() RETURNS trigger AS $$
DECLARE
    row_data record;
    subject text;
BEGIN
    IF TG_OP = 'DELETE' THEN row_data := OLD; ELSE row_data := NEW; END IF;
    IF TG_TABLE_NAME = 'api_tokens' THEN
        subject := 'token:' || row_data.name;
    ELSIF TG_TABLE_NAME = 'models' THEN
        subject := 'model:' || row_data.name;
    ELSE
        SELECT 'model:' || m.name INTO subject FROM models m WHERE m.id = row_data.model_id;
    END IF;
    IF subject IS NOT NULL THEN
        PERFORM pg_notify('{CHANNEL}', subject);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    """Create the notifying function and its triggers (PostgreSQL only)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    for table in WATCHED:
        op.execute(
            f"CREATE TRIGGER {table}_notify AFTER INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION mlwarden_notify_change()"
        )


def downgrade() -> None:
    """Drop the triggers and the function."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_notify ON {table}")
    op.execute("DROP FUNCTION IF EXISTS mlwarden_notify_change()")
