"""Deployments can mend requests: the ``input_repair`` of a deployment revision.

Revision ID: serving01
Revises: ui01
Create Date: 2026-11-30

Null on every earlier revision: nothing was mended.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "serving01"
down_revision: str | Sequence[str] | None = "ui01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``deployment_revisions.input_repair``."""
    with op.batch_alter_table("deployment_revisions") as batch:
        batch.add_column(sa.Column("input_repair", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    """Drop ``deployment_revisions.input_repair``."""
    with op.batch_alter_table("deployment_revisions") as batch:
        batch.drop_column("input_repair")
