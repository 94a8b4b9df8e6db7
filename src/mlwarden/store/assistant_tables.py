"""Tables of the command assistant: versioned datasets, logged training experiments, and each
user's conversation (what "it" is, and the dashboard's exchanges so far).

Defined on the shared ``metadata`` so Alembic and ``metadata.create_all`` see them with the rest
of the schema. A dataset's content lives in the data directory as Parquet; the row only points
at it, so the database stays small whatever the size of the data.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

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
    # the cleaning steps that made this version from its parent (a cleaned version), which a
    # model trained on it replays on raw rows; null for an upload (and a version cleaned
    # before the steps were kept)
    Column("cleaning", JSON, nullable=True),
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

# one row per conversation with the assistant (a dashboard session, an API token): who acts and
# what "it" means, so any server process, and the next one after a restart, carries it on
assistant_conversations = Table(
    "assistant_conversations",
    metadata,
    Column("key", String(200), primary_key=True),  # "api:<token name>", "ui:<session id hash>"
    Column("actor", String(128), nullable=False),
    Column("last_dataset", String(128), nullable=True),
    Column("last_model", String(128), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# what a conversation asked and what the assistant answered, newest kept per conversation
assistant_exchanges = Table(
    "assistant_exchanges",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("text", Text, nullable=False),
    Column("status", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("url", Text, nullable=True),  # a download the answer offered
    Column("label", Text, nullable=True),  # what that download names
    Index("ix_assistant_exchanges_conversation", "conversation", "id"),
)
