"""Agent: each incident is about one scope (quality, service, performance or drift).

Revision ID: agent03
Revises: capture01
Create Date: 2026-11-30

A nullable ``scope`` column on ``incidents``. Incidents opened before this revision keep it
null and are handled as before (every finding of the model is theirs) until they close.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "agent03"
down_revision: str | Sequence[str] | None = "capture01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the scope of an incident."""
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=16), nullable=True))


def downgrade() -> None:
    """Drop the scope of an incident."""
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("scope")
