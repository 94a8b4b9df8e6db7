"""What the dashboard reads across aggregates, in as few queries as its pages allow.

The fleet overview is the hot page: per model it reads the newest window number (an index
lookup on the ``(model_id, window, name)`` unique index), then only the last ``spark_windows``
windows of a handful of key signals, so its cost does not grow with the length of the signal
history. Nothing here writes; ``ui.queries`` turns these rows into pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import and_, func, or_, select

from mlwarden.clock import as_utc, utcnow
from mlwarden.store import agent_tables as at
from mlwarden.store import tables as t
from mlwarden.store.incidents import OPEN_STATES
from mlwarden.store.windows import SignalRow

if TYPE_CHECKING:
    from mlwarden.store.repository import Store


@dataclass
class FleetModel:
    """One model as the overview reads it: its production deployment's newest revision, its
    open incidents (newest first) and the recent signal values of its last windows."""

    name: str
    task: str
    monitoring: bool
    revision: int | None = None
    live_version: int | None = None
    disabled: bool = False
    incidents: list[dict[str, Any]] = field(default_factory=list)
    last_window: int | None = None
    last_ts: datetime | None = None
    points: list[SignalRow] = field(default_factory=list)
    findings_last_window: int = 0


class ChartEvents(NamedTuple):
    """Rows of what happened to a model: deployment revisions, incidents opened, actions."""

    deploys: list[Any]
    incidents: list[Any]
    actions: list[Any]


def fleet(
    store: Store, signals: Sequence[str], spark_windows: int, models_per_read: int
) -> list[FleetModel]:
    """Every model, by name, with the values of ``signals`` in its last ``spark_windows``
    windows (read for ``models_per_read`` models a statement)."""
    m, d, s, i, f = t.models, t.deployment_revisions, at.signals, at.incidents, at.findings
    with store.engine.connect() as conn:
        models = conn.execute(select(m.c.id, m.c.name, m.c.task, m.c.monitoring).order_by(m.c.name))
        rows = {r.id: FleetModel(r.name, r.task, bool(r.monitoring)) for r in models}
        if not rows:
            return []
        newest = (
            select(d.c.model_id, func.max(d.c.revision).label("rev"))
            .where(d.c.environment == "production")
            .group_by(d.c.model_id)
            .subquery()
        )
        for r in conn.execute(
            select(d.c.model_id, d.c.revision, d.c.live_version, d.c.disabled).join(
                newest,
                and_(
                    d.c.model_id == newest.c.model_id,
                    d.c.revision == newest.c.rev,
                    d.c.environment == "production",
                ),
            )
        ):
            row = rows[r.model_id]
            row.revision, row.live_version, row.disabled = r.revision, r.live_version, r.disabled
        for inc in conn.execute(
            select(i.c.id, i.c.model_id, i.c.severity, i.c.state, i.c.diagnosis)
            .where(i.c.state.in_(OPEN_STATES))
            .order_by(i.c.id.desc())
        ):
            rows[inc.model_id].incidents.append(
                {
                    "id": inc.id,
                    "severity": inc.severity,
                    "state": inc.state,
                    "diagnosis": inc.diagnosis,
                }
            )
        # every model's last window and its time in one statement, the spark windows in one
        # per ``models_per_read`` models and the last windows' findings in one, where it took
        # four statements a model (docs/benchmarks.md, "A fleet"). The last window is a
        # correlated max() over the (model_id, window, name) index: a single seek per model,
        # where a GROUP BY would scan every signal row.
        last_window = select(func.max(s.c.window)).where(s.c.model_id == m.c.id).scalar_subquery()
        lasts = select(m.c.id.label("model_id"), last_window.label("last")).subquery()
        last_ts = (
            select(s.c.ts)
            .where(s.c.model_id == lasts.c.model_id, s.c.window == lasts.c.last)
            .limit(1)
            .scalar_subquery()
        )
        for last in conn.execute(
            select(lasts.c.model_id, lasts.c.last, last_ts.label("ts")).where(
                lasts.c.last.is_not(None)
            )
        ):
            row = rows[last.model_id]
            row.last_window = int(last.last)
            row.last_ts = None if last.ts is None else as_utc(last.ts)
        # each model's range is a term of one OR: SQLite and PostgreSQL seek the index once
        # per term (joined to the subquery above instead, SQLite scanned every signal row)
        ranges = [
            (model_id, row.last_window)
            for model_id, row in rows.items()
            if row.last_window is not None
        ]
        for start in range(0, len(ranges), models_per_read):
            for p in conn.execute(
                select(s.c.model_id, s.c.window, s.c.ts, s.c.name, s.c.value)
                .where(
                    or_(
                        *(
                            and_(s.c.model_id == model_id, s.c.window > last - spark_windows)
                            for model_id, last in ranges[start : start + models_per_read]
                        )
                    ),
                    s.c.name.in_(tuple(signals)),
                )
                .order_by(s.c.model_id, s.c.window, s.c.name)
            ):
                rows[p.model_id].points.append(SignalRow(p.window, p.ts, p.name, p.value))
        for r in conn.execute(
            select(f.c.model_id, func.count().label("n"))
            .join(lasts, and_(f.c.model_id == lasts.c.model_id, f.c.window == lasts.c.last))
            .group_by(f.c.model_id)
        ):
            rows[r.model_id].findings_last_window = int(r.n)
    return list(rows.values())


def last_windows(store: Store, model_id: int, limit: int) -> list[SignalRow]:
    """Every signal of the last ``limit`` windows of a model (in no particular order)."""
    s = at.signals
    with store.engine.connect() as conn:
        last = conn.execute(select(func.max(s.c.window)).where(s.c.model_id == model_id)).scalar()
        if last is None:
            return []
        rows = conn.execute(
            select(s.c.window, s.c.ts, s.c.name, s.c.value).where(
                s.c.model_id == model_id, s.c.window > last - limit
            )
        ).all()
    return [SignalRow(p.window, p.ts, p.name, p.value) for p in rows]


def chart_events(store: Store, model_id: int, since: datetime | None, per_kind: int) -> ChartEvents:
    """The newest ``per_kind`` deployment revisions (production), incidents opened and actions
    of a model since ``since``, each newest first."""
    d, i, a = t.deployment_revisions, at.incidents, at.actions
    deploys = select(
        d.c.revision,
        d.c.live_version,
        d.c.fallback_version,
        d.c.canary_version,
        d.c.disabled,
        d.c.actor,
        d.c.reason,
        d.c.created_at,
    ).where(d.c.model_id == model_id, d.c.environment == "production")
    incidents = select(
        i.c.id, i.c.severity, i.c.diagnosis, i.c.scope, i.c.state, i.c.opened_at
    ).where(i.c.model_id == model_id)
    actions = select(a.c.id, a.c.kind, a.c.state, a.c.actor, a.c.incident_id, a.c.created_at).where(
        a.c.model_id == model_id
    )
    if since is not None:
        deploys = deploys.where(d.c.created_at >= since)
        incidents = incidents.where(i.c.opened_at >= since)
        actions = actions.where(a.c.created_at >= since)
    with store.engine.connect() as conn:
        return ChartEvents(
            list(conn.execute(deploys.order_by(d.c.revision.desc()).limit(per_kind))),
            list(conn.execute(incidents.order_by(i.c.id.desc()).limit(per_kind))),
            list(conn.execute(actions.order_by(a.c.id.desc()).limit(per_kind))),
        )


def newest_signals(store: Store, model_id: int, limit: int) -> list[SignalRow]:
    """The newest ``limit`` signal rows of a model, by window (newest first) and name."""
    s = at.signals
    query = (
        select(s.c.window, s.c.ts, s.c.name, s.c.value)
        .where(s.c.model_id == model_id)
        .order_by(s.c.window.desc(), s.c.name)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return [SignalRow(r.window, as_utc(r.ts), r.name, r.value) for r in conn.execute(query)]


def waiting_approvals(store: Store, now: datetime | None = None) -> list[int]:
    """The ids of the approvals still waiting for a person, newest first: pending and not past
    their expiry (the rule :meth:`mlwarden.store.approvals.Approvals.expire` applies).

    The navigation badge counts these and the approvals page lists these, so they agree even
    before the agent has marked an overdue request expired."""
    a = at.approvals
    now = now or utcnow()
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(a.c.id, a.c.expires_at).where(a.c.state == "pending").order_by(a.c.id.desc())
        ).all()
    return [r.id for r in rows if as_utc(r.expires_at) > now]


def audit_page(
    store: Store,
    *,
    model: str | None = None,
    actor: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Audit entries newest first; ``model`` matches targets ``<model>`` and ``<model>/...``,
    ``kind`` is a prefix of the entry's action (``approval`` finds ``approval.approve``)."""
    a = t.audit_log
    query = select(a.c.id, a.c.ts, a.c.actor, a.c.action, a.c.target, a.c.details)
    if model:
        query = query.where(
            (a.c.target == model) | a.c.target.startswith(f"{model}/", autoescape=True)
        )
    if actor:
        query = query.where(a.c.actor == actor)
    if kind:
        query = query.where(a.c.action.startswith(kind, autoescape=True))
    if since is not None:
        query = query.where(a.c.ts >= since)
    if until is not None:
        query = query.where(a.c.ts <= until)
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(a.c.id.desc()).limit(limit))
        return [{**r._mapping, "ts": as_utc(r.ts)} for r in rows]


def token_is_active(store: Store, name: str, role: str) -> bool:
    """True while the token ``name`` exists, is not revoked and still has ``role``.

    A browser session remembers who signed in; this re-check makes a revoked token (or a changed
    role) end the session at its next request.
    """
    tok = t.api_tokens
    with store.engine.connect() as conn:
        row = conn.execute(select(tok.c.role, tok.c.revoked).where(tok.c.name == name)).first()
    return row is not None and not row.revoked and row.role == role
