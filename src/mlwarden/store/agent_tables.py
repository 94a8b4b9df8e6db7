"""Tables of the agent: signals, findings, incidents, decisions, the action journal,
verifications and approvals.

Defined on the shared ``metadata`` so Alembic and ``metadata.create_all`` see them with the
rest of the schema. The ``actions`` table is the crash-safe journal: a row is written in state
``pending`` before an action touches anything, moves to ``running``, then ``done`` / ``failed`` /
``undone``, and records the deployment revision before and after.
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
    String,
    Table,
    Text,
    UniqueConstraint,
)

from mlwarden.store.tables import metadata

signals = Table(
    "signals",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("window", Integer, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),  # end of the window
    Column("name", String(128), nullable=False),
    Column("value", Float, nullable=True),
    # set on the ``window.closed`` row only: the (received_at, id) of the window's last record,
    # where the next window starts; null for windows stored before migration agent02
    Column("end_received_at", DateTime(timezone=True), nullable=True),
    Column("end_record_id", String(64), nullable=True),
    UniqueConstraint("model_id", "window", "name", name="uq_signals_model_window_name"),
)

findings = Table(
    "findings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("window", Integer, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detector", String(128), nullable=False),
    Column("features", JSON, nullable=False, default=list),
    Column("statistic", String(128), nullable=False),
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("p_value", Float, nullable=True),
    Column("message", Text, nullable=False),
    Column("evidence", JSON, nullable=False, default=dict),
    Column("incident_id", Integer, nullable=True),
    Index("ix_findings_model_window", "model_id", "window"),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    # open → acting → verifying → resolved / escalated / dismissed; drift: open → accepted
    Column("state", String(16), nullable=False),
    # quality, service, performance or drift (agent.incidents.Scope); null: from before scopes
    Column("scope", String(16), nullable=True),
    Column("diagnosis", String(64), nullable=True),
    Column("severity", String(16), nullable=False, default="low"),
    Column("kinds", JSON, nullable=False, default=list),
    Column("features", JSON, nullable=False, default=list),
    Column("first_window", Integer, nullable=False),
    Column("last_window", Integer, nullable=False),
    Column("baseline", JSON, nullable=False, default=dict),  # signals before the failure
    Column("timeline", JSON, nullable=False, default=list),  # [{ts, event, text}]
    Column("summary", Text, nullable=False, default=""),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Index("ix_incidents_model_state", "model_id", "state"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("diagnosis", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("notify", Boolean, nullable=False, default=False),
    Column("params", JSON, nullable=False, default=dict),
    Column("severity", String(16), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("needs_approval", Boolean, nullable=False, default=False),
    Column("mode", String(16), nullable=False),
    Column("alternatives", JSON, nullable=False, default=list),
    Column("rationale", Text, nullable=False),
)

actions = Table(
    "actions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="SET NULL"), nullable=True),
    Column("decision_id", Integer, ForeignKey("decisions.id", ondelete="SET NULL"), nullable=True),
    Column("kind", String(16), nullable=False),
    # pending → running → done / failed; done → undone
    Column("state", String(16), nullable=False),
    Column("params", JSON, nullable=False, default=dict),
    Column("actor", String(128), nullable=False),
    Column("approval_id", Integer, nullable=True),
    Column("before_revision", Integer, nullable=True),
    Column("after_revision", Integer, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("result", JSON, nullable=False, default=dict),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("undone_at", DateTime(timezone=True), nullable=True),
    Index("ix_actions_model_state", "model_id", "state"),
)

verifications = Table(
    "verifications",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=True),
    Column("action_id", Integer, ForeignKey("actions.id", ondelete="CASCADE"), nullable=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    # recovered | not_recovered | canary_passed | canary_failed
    Column("verdict", String(16), nullable=False),
    Column("windows", JSON, nullable=False, default=list),
    Column("baseline", JSON, nullable=False, default=dict),
    Column("observed", JSON, nullable=False, default=dict),
    Column("details", Text, nullable=False, default=""),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("decision_id", Integer, ForeignKey("decisions.id", ondelete="CASCADE"), nullable=True),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=True),
    Column("action", String(16), nullable=False),
    Column("params", JSON, nullable=False, default=dict),
    # pending | approved | rejected | expired | withdrawn (by the agent: its grounds changed)
    Column("state", String(16), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(128), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=True),
    Index("ix_approvals_state", "state"),
)

# an incident's diagnosis for the dashboard (``ui.report_cache``), made off the request path
# and kept here so every server process (``--workers N``, replicas) reads the one made once:
# ``key`` is the incident's state it was made for, ``as_of`` the newest window it saw,
# ``headline`` the incident's diagnosis kind and severity then
incident_diagnoses = Table(
    "incident_diagnoses",
    metadata,
    Column(
        "incident_id",
        Integer,
        ForeignKey("incidents.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("key", Text, nullable=False),
    Column("as_of", Integer, nullable=False),
    Column("headline", JSON, nullable=False),
    Column("diagnosis", Text, nullable=False),  # IncidentDiagnosis as JSON
    Column("made_at", DateTime(timezone=True), nullable=False),
)

__all__ = [
    "actions",
    "approvals",
    "decisions",
    "findings",
    "incident_diagnoses",
    "incidents",
    "signals",
    "verifications",
]
