"""Agent: where each closed window ended, so the next one starts after it by key, not by offset.

Revision ID: agent02
Revises: agent01
Create Date: 2026-11-27

Two nullable columns on ``signals`` (filled on a window's ``window.closed`` row): the
``received_at`` and id of the window's last record. Windows stored before this revision keep
them null; the agent finds the window after such a one by offset, once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "agent02"
down_revision: str | Sequence[str] | None = "agent01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the end key of a window to ``signals``."""
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("end_received_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("end_record_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Drop the end key of a window."""
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.drop_column("end_record_id")
        batch_op.drop_column("end_received_at")
