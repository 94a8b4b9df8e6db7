"""The assistant keeps its conversations in the database, and a cleaned dataset its steps.

Revision ID: assist01
Revises: replicas01
Create Date: 2026-12-01

``assistant_conversations`` holds each conversation's actor and what "it" means, and
``assistant_exchanges`` the dashboard's exchanges with the assistant, so both survive a
restart and are the same in every server process. ``datasets.cleaning`` keeps the steps that
made a cleaned version, which a model trained on it replays on raw rows; versions cleaned
before this revision have none (a model trained on them takes the cleaned columns, as before).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "assist01"
down_revision: str | Sequence[str] | None = "replicas01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``datasets.cleaning``; create ``assistant_conversations`` and ``assistant_exchanges``."""
    with op.batch_alter_table("datasets") as batch_op:
        batch_op.add_column(sa.Column("cleaning", sa.JSON(), nullable=True))
    op.create_table(
        "assistant_conversations",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("last_dataset", sa.String(length=128), nullable=True),
        sa.Column("last_model", sa.String(length=128), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_assistant_conversations")),
    )
    op.create_table(
        "assistant_exchanges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("label", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistant_exchanges")),
    )
    op.create_index(
        "ix_assistant_exchanges_conversation",
        "assistant_exchanges",
        ["conversation", "id"],
        unique=False,
    )


def downgrade() -> None:
    """Drop the two tables and ``datasets.cleaning``."""
    op.drop_index("ix_assistant_exchanges_conversation", table_name="assistant_exchanges")
    op.drop_table("assistant_exchanges")
    op.drop_table("assistant_conversations")
    with op.batch_alter_table("datasets") as batch_op:
        batch_op.drop_column("cleaning")
