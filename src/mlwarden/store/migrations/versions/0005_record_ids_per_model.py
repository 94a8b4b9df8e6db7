"""Records: ids unique per model, not across models.

Revision ID: capture01
Revises: agent02
Create Date: 2026-11-30

The primary key of ``records`` becomes (model_id, id) and that of ``feedback`` (model_id,
record_id). Before, a record whose id another model had already used was skipped as a
duplicate, silently. Existing rows keep their ids: ids that were unique across all models are
unique within each. SQLite rebuilds both tables (batch mode), PostgreSQL swaps the constraints.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "capture01"
down_revision: str | Sequence[str] | None = "agent02"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = {"records": ("id",), "feedback": ("record_id",)}


def _primary_keys(per_model: bool) -> None:
    for table, columns in _KEYS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"pk_{table}", type_="primary")
            batch_op.create_primary_key(
                f"pk_{table}", ["model_id", *columns] if per_model else list(columns)
            )


def upgrade() -> None:
    """Key records and labels by (model, id)."""
    _primary_keys(per_model=True)


def downgrade() -> None:
    """Key them by id alone again (fails when two models share an id by then)."""
    _primary_keys(per_model=False)
