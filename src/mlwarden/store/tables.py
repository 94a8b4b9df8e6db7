"""The relational schema of mlwarden (SQLAlchemy 2 Core tables; Alembic migrates them).

Records are the hot path and are written with Core bulk inserts; everything else is small.
JSON columns hold feature dicts and free-form details so one schema serves every model.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
)
from sqlalchemy.sql.elements import ColumnElement

# None goes in as SQL NULL (not the JSON text 'null'), so "IS NULL" means "absent"
NULLABLE_JSON = JSON(none_as_null=True)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("task", String(32), nullable=False),
    Column("spec", JSON, nullable=False),  # the full ModelSpec: features, target, positive class
    Column("monitoring", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),  # 1, 2, 3 … per model
    Column("kind", String(16), nullable=False),  # "sklearn" | "remote"
    Column("artifact", LargeBinary, nullable=True),  # skops bytes for "sklearn"
    Column("artifact_sha256", String(64), nullable=True),
    Column(
        "endpoint", NULLABLE_JSON, nullable=True
    ),  # url, protocol, remote name, headers for "remote"
    Column("timeout_ms", Float, nullable=True),
    Column("training_metrics", JSON, nullable=False, default=dict),
    Column("reference_sample", NULLABLE_JSON, nullable=True),  # list of feature dicts (+ target)
    Column("feature_importance", NULLABLE_JSON, nullable=True),
    Column("health", String(16), nullable=False, default="unknown"),  # unknown|healthy|unhealthy
    Column("description", Text, nullable=False, default=""),
    Column("created_by", String(128), nullable=False, default="system"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("model_id", "number", name="uq_versions_model_number"),
)

deployment_revisions = Table(
    "deployment_revisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("environment", String(32), nullable=False, default="production"),
    Column("revision", Integer, nullable=False),
    Column("live_version", Integer, nullable=True),
    Column("fallback_version", Integer, nullable=True),
    Column("canary_version", Integer, nullable=True),
    Column("canary_weight", Float, nullable=False, default=0.0),
    Column("shadow_version", Integer, nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("default_response", NULLABLE_JSON, nullable=True),
    # per feature, how the gateway mends requests (domain.FeatureRepair); null: none (0008)
    Column("input_repair", NULLABLE_JSON, nullable=True),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("model_id", "environment", "revision", name="uq_deployment_revision"),
)

# A record id is unique within its model, not across models: two systems capturing into
# different models may well number their records alike (migration 0005).
records = Table(
    "records",
    metadata,
    Column("id", String(64), nullable=False),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("features", JSON, nullable=False),
    Column("prediction", NULLABLE_JSON, nullable=True),
    Column("scores", NULLABLE_JSON, nullable=True),
    Column("latency_ms", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("served_by", String(16), nullable=False, default="external"),
    PrimaryKeyConstraint("model_id", "id"),
    Index("ix_records_model_ts", "model_id", "ts"),
    Index("ix_records_model_received", "model_id", "received_at"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("record_id", String(64), nullable=False),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("label", JSON, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("model_id", "record_id"),
    Index("ix_feedback_model_ts", "model_id", "ts"),
)


def labels_of_record(records_table: Table, feedback_table: Table) -> ColumnElement[bool]:
    """The join condition of a record and its label: the same id within the same model."""
    return and_(
        feedback_table.c.model_id == records_table.c.model_id,
        feedback_table.c.record_id == records_table.c.id,
    )


events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("kind", String(64), nullable=False),  # deploy, rollback, undo, config, register …
    Column("actor", String(128), nullable=False),
    Column("details", JSON, nullable=False, default=dict),
    Index("ix_events_model_ts", "model_id", "ts"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False, default=""),
    Column("details", JSON, nullable=False, default=dict),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

# Signed-in dashboard sessions: the signed cookie names one row, and signing out deletes it,
# so a copied cookie stops working at logout rather than when it expires.
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("sid_hash", String(64), primary_key=True),  # SHA-256 of the cookie's session id
    Column("token_name", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# One row per investigation of a model by its URL (``mlwarden investigate``,
# ``POST /v1/investigations``): what was asked, where the job is, and everything it collected
# so far (probe records, windows, findings, diagnosis), written as it goes so that a failure
# or a restart loses nothing already collected.
investigations = Table(
    "investigations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("url", String(2048), nullable=False),  # credentials masked
    Column("state", String(16), nullable=False),  # queued | running | done | failed
    Column("actor", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("params", JSON, nullable=False, default=dict),
    Column("progress", JSON, nullable=False, default=dict),
    Column("result", NULLABLE_JSON, nullable=True),
    Column("records", NULLABLE_JSON, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_investigations_created_at", "created_at"),
)
