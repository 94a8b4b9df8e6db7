"""Tables of the command assistant: versioned datasets and logged training experiments.

Defined on the shared ``metadata`` so Alembic and ``metadata.create_all`` see them with the rest
of the schema. A dataset's content lives in the data directory as Parquet; the row only points
at it, so the database stays small whatever the size of the data.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Integer, String, Table, Text, UniqueConstraint

from mlwarden.store.tables import metadata

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),  # 1, 2, 3 … per dataset name
    Column("path", Text, nullable=False),  # Parquet file, relative to the data directory
    Column("rows", Integer, nullable=False),
    Column("columns", JSON, nullable=False),  # column names in order
    Column("parent_version", Integer, nullable=True),  # the version this one was derived from
    Column("description", Text, nullable=False, default=""),  # where it came from, what changed
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("name", "version", name="uq_datasets_name_version"),
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=True),  # the registry version the run produced
    Column("dataset_name", String(128), nullable=False),
    Column("dataset_version", Integer, nullable=False),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
