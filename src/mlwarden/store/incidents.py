"""The incidents aggregate: incidents with their timelines, the decisions taken on them and
the verifications of their actions. ``AgentRepo`` is what the agent reads and writes of them,
with the stored windows they are opened on (``WindowRepo``). The action journal is in
``store.journal``, approvals in ``store.approvals``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypedDict, cast

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from mlwarden.clock import utcnow
from mlwarden.domain import ApprovalState, IncidentState
from mlwarden.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from mlwarden.store import agent_tables as at
from mlwarden.store import tables as t
from mlwarden.store.base import as_json, inserted_id, plain_row
from mlwarden.store.windows import WindowRepo

_S = IncidentState
# the legal moves; a state may always be "moved" to itself (an update that keeps it). Resolved,
# dismissed and superseded are final: a failure after them is a new incident. People may still
# act on an escalated incident (an approval answered late), and an accepted one is reopened or
# resolved, never acted on while accepted.
TRANSITIONS: Mapping[IncidentState, frozenset[IncidentState]] = {
    _S.OPEN: frozenset(
        {_S.ACTING, _S.VERIFYING, _S.RESOLVED, _S.ESCALATED, _S.DISMISSED, _S.SUPERSEDED}
        | {_S.ACCEPTED}
    ),
    _S.ACTING: frozenset({_S.OPEN, _S.VERIFYING, _S.RESOLVED, _S.ESCALATED, _S.SUPERSEDED}),
    _S.VERIFYING: frozenset({_S.OPEN, _S.ACTING, _S.RESOLVED, _S.ESCALATED, _S.SUPERSEDED}),
    _S.ESCALATED: frozenset({_S.ACTING, _S.RESOLVED}),
    _S.ACCEPTED: frozenset({_S.OPEN, _S.RESOLVED}),
    _S.RESOLVED: frozenset(),
    _S.DISMISSED: frozenset(),
    _S.SUPERSEDED: frozenset(),
}


def can_move(current: str | IncidentState, new: str | IncidentState) -> bool:
    """True when an incident in ``current`` may move to ``new`` (``TRANSITIONS``).

    >>> can_move("open", "accepted"), can_move("accepted", "acting"), can_move("resolved", "open")
    (True, False, False)
    """
    old, to = IncidentState(current), IncidentState(new)
    return old is to or to in TRANSITIONS[old]


class IllegalTransition(Conflict):
    """An incident asked to move where ``TRANSITIONS`` does not allow (HTTP 409)."""


OPEN_STATES = (_S.OPEN, _S.ACTING, _S.VERIFYING)
CLOSED_STATES = (_S.RESOLVED, _S.ESCALATED, _S.DISMISSED, _S.SUPERSEDED)
ACCEPTED = _S.ACCEPTED


ACTIVE = "active"


def incident_states(text: str) -> tuple[IncidentState, ...]:
    """The states a filter names: one state, several separated by commas, or ``active`` for
    every state still worked on (open, acting, verifying: what the dashboard and the assistant
    count as open incidents). An unknown name is an error, not an empty list.

    >>> incident_states("active")
    (<IncidentState.OPEN: 'open'>, <IncidentState.ACTING: 'acting'>, \
<IncidentState.VERIFYING: 'verifying'>)
    >>> incident_states("resolved, escalated")
    (<IncidentState.RESOLVED: 'resolved'>, <IncidentState.ESCALATED: 'escalated'>)
    >>> incident_states("opne")
    Traceback (most recent call last):
    ...
    mlwarden.errors.InvalidInput: unknown incident state 'opne': use active, or one or more of \
open, acting, verifying, resolved, escalated, dismissed, superseded, accepted
    """
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    known = {s.value: s for s in IncidentState}
    out: list[IncidentState] = []
    for name in names or [text]:
        if name == ACTIVE:
            out.extend(OPEN_STATES)
        elif name in known:
            out.append(known[name])
        else:
            raise InvalidInput(
                f"unknown incident state {name!r}: use {ACTIVE}, or one or more of "
                + ", ".join(known)
            )
    return tuple(dict.fromkeys(out))


class IncidentRow(TypedDict):
    """An incident as the store returns it: its columns, ``state`` as an ``IncidentState`` (a
    ``str``: ``row["state"] == "open"`` holds) and ``model`` by name instead of its id."""

    id: int
    model: str
    state: IncidentState
    scope: str | None
    diagnosis: str | None
    severity: str
    kinds: list[str]
    features: list[str]
    first_window: int
    last_window: int
    baseline: dict[str, Any]
    timeline: list[dict[str, Any]]
    summary: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class IncidentDetail(IncidentRow):
    """An incident with the rows of its decisions, actions and verifications, oldest first.
    These are the tables' columns as stored (an action's ``state`` a plain string, its model an
    id); ``ActionJournal.get`` gives an action as an ``ActionRow``."""

    decisions: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    verifications: list[dict[str, Any]]


class _Valued(Protocol):
    @property
    def value(self) -> str: ...


class _Alternative(Protocol):
    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


class DecisionRecord(Protocol):
    """What is stored of a decision (the agent's ``decide.Decision``)."""

    @property
    def model(self) -> str: ...
    @property
    def diagnosis(self) -> _Valued: ...
    @property
    def action(self) -> _Valued: ...
    @property
    def notify(self) -> bool: ...
    @property
    def params(self) -> Mapping[str, Any]: ...
    @property
    def severity(self) -> _Valued: ...
    @property
    def confidence(self) -> float: ...
    @property
    def needs_approval(self) -> bool: ...
    @property
    def mode(self) -> str: ...
    @property
    def alternatives(self) -> Sequence[_Alternative]: ...
    @property
    def rationale(self) -> str: ...


class ClosedIncident(NamedTuple):
    id: int
    state: IncidentState
    kinds: list[str]
    features: list[str]


class FleetCounts(NamedTuple):
    """Rows of ``AgentRepo.fleet_counts``: ``(model_id, window, ts, name, value)`` of every
    model's last window; ``(model_id, state, severity, count)`` of incidents; ``(model_id,
    kind, state, count)`` of actions; ``(model_id, count)`` of pending approvals; and the
    models' names by id."""

    latest: Sequence[Any]
    incidents: Sequence[Any]
    actions: Sequence[Any]
    pending: Sequence[Any]
    names: dict[int, str]


class AgentRepo(WindowRepo):
    """Reads and writes the agent's windows, incidents, decisions and verifications for one
    ``Store``."""

    # ------------------------------------------------------------------ incidents

    def open_incidents(self, model: str) -> list[IncidentRow]:
        """The incidents of ``model`` being worked on (open, acting or verifying), oldest first."""
        return self._incidents_in(model, OPEN_STATES)

    def accepted_incidents(self, model: str) -> list[IncidentRow]:
        """The accepted drift incidents of ``model``, oldest first."""
        return self._incidents_in(model, (ACCEPTED,))

    def models_with_incidents(self) -> set[str]:
        """The models with an incident being worked on or accepted (``open_incidents`` or
        ``accepted_incidents`` not empty), in one statement: the agent asks each of the others
        nothing about its incidents in a pass where it opens none."""
        i, m = at.incidents, t.models
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    select(m.c.name)
                    .join(i, i.c.model_id == m.c.id)
                    .where(i.c.state.in_((*OPEN_STATES, ACCEPTED)))
                    .distinct()
                ).scalars()
            )

    def _incidents_in(self, model: str, states: Sequence[str]) -> list[IncidentRow]:
        i = at.incidents
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(i)
                .where(i.c.model_id == self.store.model_id(model), i.c.state.in_(states))
                .order_by(i.c.id)
            ).all()
        names: dict[int, str] = {}
        return [self._incident(row, names) for row in rows]

    def open_incident(self, model: str, scope: str | None = None) -> IncidentRow | None:
        """The newest open incident of ``model`` (of ``scope`` when given)."""
        found = [i for i in self.open_incidents(model) if scope is None or i.get("scope") == scope]
        return found[-1] if found else None

    def last_closed_window(
        self, model: str, scope: str | None = None, states: Sequence[str] = CLOSED_STATES
    ) -> int | None:
        """The newest window a closed incident of ``model`` (of ``scope``, or from before
        scopes; in one of ``states``) covered."""
        i = at.incidents
        query = select(func.max(i.c.last_window)).where(
            i.c.model_id == self.store.model_id(model), i.c.state.in_(tuple(states))
        )
        if scope is not None:
            query = query.where(or_(i.c.scope == scope, i.c.scope.is_(None)))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def create_incident(
        self,
        model: str,
        window: int,
        baseline: Mapping[str, Any],
        text: str,
        *,
        scope: str | None = None,
    ) -> int:
        now = utcnow()
        with self.engine.begin() as conn:
            return inserted_id(
                conn.execute(
                    insert(at.incidents).values(
                        model_id=self.store.model_id(model),
                        state=IncidentState.OPEN,
                        scope=scope,
                        severity="low",
                        kinds=[],
                        features=[],
                        first_window=window,
                        last_window=window,
                        baseline=as_json(dict(baseline)),
                        timeline=[{"ts": now.isoformat(), "event": "opened", "text": text}],
                        summary=text,
                        opened_at=now,
                        updated_at=now,
                    )
                )
            )

    def update_incident(
        self,
        incident_id: int,
        *,
        event: str | None = None,
        text: str = "",
        entry: Mapping[str, Any] | None = None,
        **values: Any,
    ) -> None:
        """Change an incident's fields and, with ``event``, append to its timeline; ``entry``
        adds fields to that timeline entry (who did it, to whom)."""
        now = utcnow()
        i = at.incidents
        with self.engine.begin() as conn:
            # locked until the update: the agent and people on call append to the same
            # timeline, and neither may lose the other's entry (PostgreSQL; SQLite has one writer)
            row = conn.execute(
                select(i.c.timeline, i.c.diagnosis, i.c.severity, i.c.state)
                .where(i.c.id == incident_id)
                .with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"no incident {incident_id}", incident=incident_id)
            state = values.get("state")
            if state is not None and not can_move(row.state, getattr(state, "value", state)):
                raise IllegalTransition(
                    f"incident {incident_id} is {row.state}: it cannot become "
                    f"{getattr(state, 'value', state)}",
                    incident=incident_id,
                )
            timeline = list(row.timeline or [])
            changes = _diagnosis_changes(row, values)
            if changes and row.diagnosis is not None:
                # what people were told changed: the history keeps when, from what and why
                why = f": {text}" if text else ""
                timeline.append(
                    {"ts": now.isoformat(), "event": "rediagnosed", "text": changes + why}
                )
            if event is not None:
                timeline.append(
                    {**(entry or {}), "ts": now.isoformat(), "event": event, "text": text}
                )
            if len(timeline) != len(row.timeline or []):
                values["timeline"] = timeline
            if values.get("state") in CLOSED_STATES:
                values.setdefault("closed_at", now)
                # a closed incident owns every window seen so far: none of them reopens it
                model_id = conn.execute(
                    select(at.incidents.c.model_id).where(i.c.id == incident_id)
                ).scalar()
                newest = conn.execute(
                    select(func.max(at.signals.c.window)).where(at.signals.c.model_id == model_id)
                ).scalar()
                if newest is not None:
                    values["last_window"] = max(values.get("last_window") or newest, newest)
            conn.execute(
                update(i).where(i.c.id == incident_id).values(updated_at=now, **_jsonable(values))
            )

    def _incident(self, row: Any, names: dict[int, str] | None = None) -> IncidentRow:
        """``row`` as an ``IncidentRow``; ``names`` caches model names across rows."""
        out = plain_row(row)
        model_id = out.pop("model_id")
        if names is None:
            out["model"] = self.store.model_name(model_id)
        else:
            out["model"] = names.setdefault(model_id, self.store.model_name(model_id))
        out["state"] = IncidentState(out["state"])
        return cast(IncidentRow, out)

    def get_incident(self, incident_id: int) -> IncidentDetail:
        """An incident with its decisions, actions and verifications."""
        with self.engine.connect() as conn:
            row = conn.execute(select(at.incidents).where(at.incidents.c.id == incident_id)).first()
            if row is None:
                raise NotFound(f"no incident {incident_id}", incident=incident_id)
            out = cast(dict[str, Any], self._incident(row))
            for key, table in (
                ("decisions", at.decisions),
                ("actions", at.actions),
                ("verifications", at.verifications),
            ):
                rows = conn.execute(
                    select(table).where(table.c.incident_id == incident_id).order_by(table.c.id)
                )
                out[key] = [plain_row(r) for r in rows]
        return cast(IncidentDetail, out)

    def list_incidents(
        self, model: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[IncidentRow]:
        i = at.incidents
        query = select(i)
        if model is not None:
            query = query.where(i.c.model_id == self.store.model_id(model))
        if state is not None:
            query = query.where(i.c.state.in_(incident_states(state)))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(i.c.id.desc()).limit(limit)).all()
        names: dict[int, str] = {}
        return [self._incident(r, names) for r in rows]

    def closed_with_diagnosis(
        self, model: str, diagnosis: str, limit: int = 50
    ) -> list[ClosedIncident]:
        """The newest resolved or escalated incidents of ``model`` diagnosed ``diagnosis``,
        newest first (what failure memory compares a new incident with)."""
        i = at.incidents
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(i.c.id, i.c.state, i.c.kinds, i.c.features)
                .where(
                    i.c.model_id == self.store.model_id(model),
                    i.c.diagnosis == diagnosis,
                    i.c.state.in_((_S.RESOLVED, _S.ESCALATED)),
                )
                .order_by(i.c.id.desc())
                .limit(limit)
            ).all()
        return [
            ClosedIncident(
                r.id, IncidentState(r.state), list(r.kinds or []), list(r.features or [])
            )
            for r in rows
        ]

    def first_action_kind(self, incident_id: int, *, besides: str) -> str | None:
        """The kind of the first action journaled for an incident, ``besides`` left out."""
        a = at.actions
        with self.engine.connect() as conn:
            return conn.execute(
                select(a.c.kind)
                .where(a.c.incident_id == incident_id, a.c.kind != besides)
                .order_by(a.c.id)
                .limit(1)
            ).scalar()

    def fleet_counts(self, unsettled_states: Sequence[str]) -> FleetCounts:
        """What the fleet's gauges show: the last window's signals of every model, and the
        incidents (in ``unsettled_states``), actions and pending approvals counted by model.
        The last window costs two index seeks per model; the rest is three grouped queries over
        the incident, journal and approval tables, which stay small. ``ServiceUnavailable``
        when the database does not answer."""
        try:
            return self._fleet_counts(unsettled_states)
        except SQLAlchemyError as exc:
            raise ServiceUnavailable("the database is unreachable") from exc

    def _fleet_counts(self, unsettled_states: Sequence[str]) -> FleetCounts:
        with self.engine.connect() as conn:
            names = dict(conn.execute(select(t.models.c.id, t.models.c.name)).all())
            s = at.signals
            latest: list[Any] = []
            for model_id in names:
                # one seek per model on the (model_id, window, name) index, as the dashboard's
                # fleet page does: a GROUP BY over all models would read every signal ever
                # stored at each scrape
                last = conn.execute(
                    select(func.max(s.c.window)).where(s.c.model_id == model_id)
                ).scalar()
                if last is not None:
                    latest += conn.execute(
                        select(s.c.model_id, s.c.window, s.c.ts, s.c.name, s.c.value).where(
                            s.c.model_id == model_id, s.c.window == last
                        )
                    ).all()
            i = at.incidents
            incidents = conn.execute(
                select(i.c.model_id, i.c.state, i.c.severity, func.count())
                .where(i.c.state.in_(tuple(unsettled_states)))
                .group_by(i.c.model_id, i.c.state, i.c.severity)
            ).all()
            a = at.actions
            actions = conn.execute(
                select(a.c.model_id, a.c.kind, a.c.state, func.count()).group_by(
                    a.c.model_id, a.c.kind, a.c.state
                )
            ).all()
            p = at.approvals
            pending = conn.execute(
                select(p.c.model_id, func.count())
                .where(p.c.state == ApprovalState.PENDING)
                .group_by(p.c.model_id)
            ).all()
        return FleetCounts(latest, incidents, actions, pending, names)

    # ------------------------------------------------------------------ decisions

    def add_decision(self, incident_id: int | None, decision: DecisionRecord) -> int:
        with self.engine.begin() as conn:
            return inserted_id(
                conn.execute(
                    insert(at.decisions).values(
                        model_id=self.store.model_id(decision.model),
                        incident_id=incident_id,
                        ts=utcnow(),
                        diagnosis=decision.diagnosis.value,
                        action=decision.action.value,
                        notify=decision.notify,
                        params=as_json(decision.params),
                        severity=decision.severity.value,
                        confidence=decision.confidence,
                        needs_approval=decision.needs_approval,
                        mode=decision.mode,
                        alternatives=as_json(
                            [a.model_dump(mode="json") for a in decision.alternatives]
                        ),
                        rationale=decision.rationale,
                    )
                )
            )

    def get_decision(self, decision_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(at.decisions).where(at.decisions.c.id == decision_id)).first()
        if row is None:
            raise NotFound(f"no decision {decision_id}", decision=decision_id)
        return plain_row(row)

    # ------------------------------------------------------------------ verifications

    def add_verification(
        self,
        model: str,
        incident_id: int | None,
        action_id: int | None,
        verdict: str,
        windows: list[int],
        baseline: Mapping[str, Any],
        observed: Mapping[str, Any],
        details: str,
    ) -> int:
        with self.engine.begin() as conn:
            return inserted_id(
                conn.execute(
                    insert(at.verifications).values(
                        model_id=self.store.model_id(model),
                        incident_id=incident_id,
                        action_id=action_id,
                        ts=utcnow(),
                        verdict=verdict,
                        windows=windows,
                        baseline=as_json(dict(baseline)),
                        observed=as_json(dict(observed)),
                        details=details,
                    )
                )
            )

    def action_verdicts(self) -> dict[int, str]:
        """The verdict of every verified action, by action id (the newest when verified twice)."""
        v = at.verifications
        with self.engine.connect() as conn:
            rows = conn.execute(select(v.c.action_id, v.c.verdict).order_by(v.c.id))
            return {r.action_id: r.verdict for r in rows if r.action_id is not None}


def _diagnosis_changes(row: Any, values: Mapping[str, Any]) -> str:
    """``"diagnosis a → b; severity x → y"`` for what ``values`` change of ``row`` ("" if none)."""
    parts = []
    for name in ("diagnosis", "severity"):
        new = values.get(name)
        new = getattr(new, "value", new)
        old = getattr(row, name)
        if new is not None and new != old:
            parts.append(f"{name} {old or 'none'} → {new}")
    return "; ".join(parts)


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (as_json(v) if isinstance(v, dict | list) else getattr(v, "value", v))
        for k, v in values.items()
    }


__all__ = [
    "ACCEPTED",
    "CLOSED_STATES",
    "OPEN_STATES",
    "TRANSITIONS",
    "AgentRepo",
    "IllegalTransition",
    "IncidentDetail",
    "IncidentRow",
    "IncidentState",
    "can_move",
]
