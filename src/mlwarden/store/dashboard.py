"""What the dashboard reads across aggregates, in as few queries as its pages allow.

The fleet overview is the hot page: per model it reads the newest window number (an index
lookup on the ``(model_id, window, name)`` unique index), then only the last ``spark_windows``
windows of a handful of key signals, so its cost does not grow with the length of the signal
history. Nothing here writes; ``ui.queries`` turns these rows into pages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, and_, func, or_, select

from mlwarden.clock import as_utc, utcnow
from mlwarden.domain import ApprovalState
from mlwarden.store import agent_tables as at
from mlwarden.store import tables as t
from mlwarden.store.approvals import overdue
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
    points: list[SparkPoint] = field(default_factory=list)
    findings_last_window: int = 0


class SparkPoint(NamedTuple):
    """One value of a model's recent windows, as the overview's sparklines read it."""

    window: int
    name: str
    value: float | None


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
    m, d, s, i = t.models, t.deployment_revisions, at.signals, at.incidents
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
        # every model's last window and its time in one statement (a correlated max() over
        # the (model_id, window, name) index: a single seek per model, where a GROUP BY would
        # scan every signal row); the spark windows and the last windows' findings of the
        # models whose last window is not the one read before (see ``_WINDOWS_READ``)
        lasts = _lasts()
        last_ts = (
            select(s.c.ts)
            .where(s.c.model_id == lasts.c.model_id, s.c.window == lasts.c.last)
            .limit(1)
            .scalar_subquery()
        )
        lasts_of = {
            r.model_id: (int(r.last), None if r.ts is None else as_utc(r.ts))
            for r in conn.execute(
                select(lasts.c.model_id, lasts.c.last, last_ts.label("ts")).where(
                    lasts.c.last.is_not(None)
                )
            )
            if r.model_id in rows  # not one created since the models were read
        }
        key = (
            *conn.execute(select(func.min(s.c.id))).one(),
            *conn.execute(select(func.count(), func.max(m.c.id)).select_from(m)).one(),
            tuple(signals),
            spark_windows,
        )
        held = _WINDOWS_READ.get(store)
        if held is None or held[0] != key:
            held = (key, {})
            _WINDOWS_READ[store] = held
        known = held[1]
        for gone in set(known) - set(lasts_of):
            del known[gone]
        moved = {i: last for i, (last, _) in lasts_of.items() if known.get(i, (None,))[0] != last}
        known.update(_windows_read(conn, moved, signals, spark_windows, models_per_read))
        for model_id, (last, ts) in lasts_of.items():
            row = rows[model_id]
            row.last_window, row.last_ts = last, ts
            _, row.points, row.findings_last_window = known[model_id]
    return list(rows.values())


# Per store: what it read of each model's last windows (the last window's number, its spark
# points and the count of its findings), and the key under which that holds: the lowest
# signal row id (retention purges the oldest), the models' count and highest id, the
# arguments. A window's signal and finding rows are written with it in one transaction and
# never changed, so a model whose last window is the one read before needs no read: at 1,000
# models, reading every model's spark windows and building their series was 1.3 s of CPU a
# view (docs/benchmarks.md, "A fleet"). Replicas' windows show too: the last windows are
# read from the database every time.
_WINDOWS_READ: WeakKeyDictionary[
    Store, tuple[tuple[Any, ...], dict[int, tuple[int, list[SparkPoint], int]]]
] = WeakKeyDictionary()


def _lasts() -> Any:
    """(model_id, last): every model's newest stored window (None before its first)."""
    m, s = t.models, at.signals
    last_window = select(func.max(s.c.window)).where(s.c.model_id == m.c.id).scalar_subquery()
    return select(m.c.id.label("model_id"), last_window.label("last")).subquery()


def _windows_read(
    conn: Connection,
    lasts: Mapping[int, int],
    signals: Sequence[str],
    spark_windows: int,
    models_per_read: int,
) -> dict[int, tuple[int, list[SparkPoint], int]]:
    """Per model id of ``lasts`` (its last window): that window, the ``signals`` of its last
    ``spark_windows`` windows and the count of its last window's findings, for
    ``models_per_read`` models a statement (one ``OR`` term each: SQLite and PostgreSQL seek
    the index once per term; joined to a subquery instead, SQLite scanned every signal row)."""
    s, f = at.signals, at.findings
    points: dict[int, list[SparkPoint]] = {i: [] for i in lasts}
    findings: dict[int, int] = dict.fromkeys(lasts, 0)
    ranges = list(lasts.items())
    for start in range(0, len(ranges), models_per_read):
        chunk = ranges[start : start + models_per_read]
        # fetched at once, without the end times (the rows' processors per value and the
        # driver's fetch per row were most of a cold read: 120,000 rows at 1,000 models)
        for model_id, window, name, value in conn.execute(
            select(s.c.model_id, s.c.window, s.c.name, s.c.value)
            .where(
                or_(
                    *(
                        and_(s.c.model_id == model_id, s.c.window > last - spark_windows)
                        for model_id, last in chunk
                    )
                ),
                s.c.name.in_(tuple(signals)),
            )
            .order_by(s.c.model_id, s.c.window, s.c.name)
        ).all():
            points[model_id].append(SparkPoint(window, name, value))
        for model_id, n in conn.execute(
            select(f.c.model_id, func.count())
            .where(
                or_(
                    *(
                        and_(f.c.model_id == model_id, f.c.window == last)
                        for model_id, last in chunk
                    )
                )
            )
            .group_by(f.c.model_id)
        ).all():
            findings[model_id] = int(n)
    return {i: (last, points[i], findings[i]) for i, last in lasts.items()}


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
    their expiry (``store.approvals.overdue``, the rule ``Approvals.expire`` applies).

    The navigation badge counts these and the approvals page lists these, so they agree even
    before the agent has marked an overdue request expired."""
    a = at.approvals
    now = now or utcnow()
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(a.c.id, a.c.expires_at)
            .where(a.c.state == ApprovalState.PENDING)
            .order_by(a.c.id.desc())
        ).all()
    return [r.id for r in rows if not overdue(r.expires_at, now)]


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
