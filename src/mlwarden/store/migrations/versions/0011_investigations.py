"""Investigations of a model by its URL, kept as they run.

Revision ID: investigate01
Revises: replicas01
Create Date: 2026-12-01

``investigations`` holds one row per ``mlwarden investigate`` / ``POST /v1/investigations``:
the request, the job's state and progress, and what it collected so far (probe records,
windows, findings, diagnosis), so a failed or interrupted investigation keeps its evidence.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "investigate01"
down_revision: str | Sequence[str] | None = "assist01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``investigations``."""
    op.create_table(
        "investigations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("records", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_investigations")),
    )
    op.create_index("ix_investigations_created_at", "investigations", ["created_at"], unique=False)


def downgrade() -> None:
    """Drop ``investigations``."""
    op.drop_index("ix_investigations_created_at", table_name="investigations")
    op.drop_table("investigations")
