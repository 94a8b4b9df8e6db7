"""Dashboard sessions held on the server, so signing out ends them.

Revision ID: ui01
Revises: agent03
Create Date: 2026-11-30

A session cookie issued before this revision names no row and is refused: its holder signs in
again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ui01"
down_revision: str | Sequence[str] | None = "agent03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``ui_sessions``."""
    op.create_table(
        "ui_sessions",
        sa.Column("sid_hash", sa.String(length=64), nullable=False),
        sa.Column("token_name", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sid_hash", name=op.f("pk_ui_sessions")),
    )


def downgrade() -> None:
    """Drop ``ui_sessions``."""
    op.drop_table("ui_sessions")
