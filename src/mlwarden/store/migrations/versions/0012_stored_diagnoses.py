"""Incidents' diagnoses for the dashboard, kept in the database.

Revision ID: stale201
Revises: investigate01
Create Date: 2026-12-01

``incident_diagnoses`` holds, per incident, the newest diagnosis the dashboard made of it
(``ui.report_cache``): made once off the request path, read by every server process.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "stale201"
down_revision: str | Sequence[str] | None = "investigate01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``incident_diagnoses``."""
    op.create_table(
        "incident_diagnoses",
        sa.Column("incident_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("as_of", sa.Integer(), nullable=False),
        sa.Column("headline", sa.JSON(), nullable=False),
        sa.Column("diagnosis", sa.Text(), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_diagnoses_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_incident_diagnoses")),
    )


def downgrade() -> None:
    """Drop ``incident_diagnoses``."""
    op.drop_table("incident_diagnoses")
