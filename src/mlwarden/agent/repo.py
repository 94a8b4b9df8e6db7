"""Persistence of what the agent sees and concludes: windows (signals + findings), incidents,
decisions and verifications. The action journal is in ``journal.py``, approvals in
``approvals.py``. Everything goes through the shared ``Store``'s engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, or_, select, update

from mlwarden.agent.decide import Decision
from mlwarden.agent.incidents import WindowView
from mlwarden.clock import as_utc, utcnow
from mlwarden.domain import Finding
from mlwarden.errors import NotFound
from mlwarden.store import agent_tables as at
from mlwarden.store import tables as t
from mlwarden.store.repository import Store, canonical_json

OPEN_STATES = ("open", "acting", "verifying")
# superseded: a new version went live while a performance incident was open; the model is
# judged anew from there (the drop may now be the new version's, and the old decision is stale)
CLOSED_STATES = ("resolved", "escalated", "dismissed", "superseded")
# drift that persisted without harm: no longer worked on, but remembered, so the same drift
# does not open a new incident every window; it is resolved once the drift is gone
ACCEPTED = "accepted"
WINDOW_CLOSED = "window.closed"  # the signal row every stored window has; it holds its end key


def _json(value: Any) -> Any:
    import json

    return json.loads(canonical_json(value))


def _row(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = as_utc(value)
    return out


class AgentRepo:
    """Reads and writes the agent's tables for one ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    # ------------------------------------------------------------------ windows

    def save_window(
        self,
        model: str,
        window: int,
        ts: datetime,
        signals: Mapping[str, float | None],
        findings: Sequence[Finding],
        *,
        end_received_at: datetime | None = None,
        end_record_id: str | None = None,
    ) -> bool:
        """Store one closed window; False (and nothing written) when it was stored already.

        ``end_received_at`` / ``end_record_id`` are the arrival key of the window's last record
        (see ``window_end``); a window source that does not read stored records leaves them out.
        """
        model_id = self.store.model_id(model)
        with self.engine.begin() as conn:
            seen = conn.execute(
                select(func.count())
                .select_from(at.signals)
                .where(at.signals.c.model_id == model_id, at.signals.c.window == window)
            ).scalar()
            if seen:
                return False
            values = {**{k: v for k, v in signals.items()}, WINDOW_CLOSED: 1.0}
            end_at = None if end_received_at is None else as_utc(end_received_at)
            conn.execute(
                insert(at.signals),
                [
                    {
                        "model_id": model_id,
                        "window": window,
                        "ts": as_utc(ts),
                        "name": name,
                        "value": None if value is None else float(value),
                        # once per window is enough: the marker row stands for the window
                        "end_received_at": end_at if name == WINDOW_CLOSED else None,
                        "end_record_id": end_record_id if name == WINDOW_CLOSED else None,
                    }
                    for name, value in values.items()
                ],
            )
            if findings:
                conn.execute(
                    insert(at.findings),
                    [
                        {
                            "model_id": model_id,
                            "window": window,
                            "ts": as_utc(ts),
                            "kind": f.kind.value,
                            "detector": f.detector,
                            "features": list(f.features),
                            "statistic": f.statistic,
                            "score": f.score,
                            "threshold": f.threshold,
                            "p_value": f.p_value,
                            "message": f.message,
                            "evidence": _json(f.evidence),
                        }
                        for f in findings
                    ],
                )
        return True

    def window_end(self, model: str, window: int) -> tuple[datetime, str] | None:
        """The (received_at, id) of the last record of a stored window: the next window starts
        strictly after it. None when the window is unknown or was stored without its end."""
        s = at.signals
        with self.engine.connect() as conn:
            row = conn.execute(
                select(s.c.end_received_at, s.c.end_record_id).where(
                    s.c.model_id == self.store.model_id(model),
                    s.c.window == window,
                    s.c.name == WINDOW_CLOSED,
                )
            ).first()
        if row is None or row.end_received_at is None or row.end_record_id is None:
            return None
        return as_utc(row.end_received_at), str(row.end_record_id)

    def windows_between(self, model: str, since: datetime, before_window: int) -> int:
        """How many stored windows of ``model`` closed after ``since`` and before window
        ``before_window``: how long a version served before a failure began."""
        s = at.signals
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        s.c.model_id == self.store.model_id(model),
                        s.c.name == WINDOW_CLOSED,
                        s.c.window < before_window,
                        s.c.ts > as_utc(since),
                    )
                ).scalar()
                or 0
            )

    def last_window(self, model: str) -> int | None:
        model_id = self.store.model_id(model)
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.max(at.signals.c.window)).where(at.signals.c.model_id == model_id)
            ).scalar()

    def recent_windows(self, model: str, count: int, after: int | None = None) -> list[WindowView]:
        """The last ``count`` stored windows (or those after ``after``), oldest first."""
        model_id = self.store.model_id(model)
        s, f = at.signals, at.findings
        with self.engine.connect() as conn:
            query = select(s.c.window).where(s.c.model_id == model_id).distinct()
            if after is not None:
                query = query.where(s.c.window > after)
            numbers = sorted(conn.execute(query.order_by(s.c.window.desc()).limit(count)).scalars())
            if not numbers:
                return []
            views = {n: WindowView(window=n) for n in numbers}
            for row in conn.execute(
                select(s.c.window, s.c.name, s.c.value).where(
                    s.c.model_id == model_id, s.c.window.in_(numbers)
                )
            ):
                views[row.window].signals[row.name] = row.value
            for row in conn.execute(
                select(f).where(f.c.model_id == model_id, f.c.window.in_(numbers))
            ):
                views[row.window].findings.append(
                    Finding(
                        kind=row.kind,
                        detector=row.detector,
                        features=row.features or [],
                        statistic=row.statistic,
                        score=row.score,
                        threshold=row.threshold,
                        p_value=row.p_value,
                        window=row.window,
                        message=row.message,
                        evidence=row.evidence or {},
                    )
                )
        return [views[n] for n in numbers]

    def signals(
        self, model: str, name: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Signal values newest first (one row per window and name)."""
        model_id = self.store.model_id(model)
        s = at.signals
        query = select(s.c.window, s.c.ts, s.c.name, s.c.value).where(s.c.model_id == model_id)
        if name is not None:
            query = query.where(s.c.name == name)
        query = query.order_by(s.c.window.desc(), s.c.name).limit(limit)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def findings(self, model: str, limit: int = 200) -> list[dict[str, Any]]:
        model_id = self.store.model_id(model)
        f = at.findings
        query = (
            select(f)
            .where(f.c.model_id == model_id)
            .order_by(f.c.window.desc(), f.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    # ------------------------------------------------------------------ incidents

    def open_incidents(self, model: str) -> list[dict[str, Any]]:
        """The incidents of ``model`` being worked on (open, acting or verifying), oldest first."""
        return self._incidents_in(model, OPEN_STATES)

    def accepted_incidents(self, model: str) -> list[dict[str, Any]]:
        """The accepted drift incidents of ``model``, oldest first."""
        return self._incidents_in(model, (ACCEPTED,))

    def _incidents_in(self, model: str, states: Sequence[str]) -> list[dict[str, Any]]:
        i = at.incidents
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(i)
                .where(i.c.model_id == self.store.model_id(model), i.c.state.in_(states))
                .order_by(i.c.id)
            ).all()
        return [self._incident(row) for row in rows]

    def open_incident(self, model: str, scope: str | None = None) -> dict[str, Any] | None:
        """The newest open incident of ``model`` (of ``scope`` when given)."""
        found = [
            i for i in self.open_incidents(model) if scope is None or i.get("scope") == scope
        ]
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
            return int(
                conn.execute(
                    insert(at.incidents).values(
                        model_id=self.store.model_id(model),
                        state="open",
                        scope=scope,
                        severity="low",
                        kinds=[],
                        features=[],
                        first_window=window,
                        last_window=window,
                        baseline=_json(dict(baseline)),
                        timeline=[{"ts": now.isoformat(), "event": "opened", "text": text}],
                        summary=text,
                        opened_at=now,
                        updated_at=now,
                    )
                ).inserted_primary_key[0]
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
                select(i.c.timeline, i.c.diagnosis, i.c.severity)
                .where(i.c.id == incident_id)
                .with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"no incident {incident_id}", incident=incident_id)
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

    def _incident(self, row: Any) -> dict[str, Any]:
        out = _row(row)
        out["model"] = self._model_name(out.pop("model_id"))
        return out

    def _model_name(self, model_id: int) -> str:
        with self.engine.connect() as conn:
            return str(
                conn.execute(select(t.models.c.name).where(t.models.c.id == model_id)).scalar()
            )

    def get_incident(self, incident_id: int) -> dict[str, Any]:
        """An incident with its decisions, actions and verifications."""
        with self.engine.connect() as conn:
            row = conn.execute(select(at.incidents).where(at.incidents.c.id == incident_id)).first()
            if row is None:
                raise NotFound(f"no incident {incident_id}", incident=incident_id)
            out = self._incident(row)
            for key, table in (
                ("decisions", at.decisions),
                ("actions", at.actions),
                ("verifications", at.verifications),
            ):
                rows = conn.execute(
                    select(table).where(table.c.incident_id == incident_id).order_by(table.c.id)
                )
                out[key] = [_row(r) for r in rows]
        return out

    def list_incidents(
        self, model: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        i = at.incidents
        query = select(i)
        if model is not None:
            query = query.where(i.c.model_id == self.store.model_id(model))
        if state is not None:
            query = query.where(i.c.state == state)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(i.c.id.desc()).limit(limit)).all()
        return [self._incident(r) for r in rows]

    # ------------------------------------------------------------------ decisions

    def add_decision(self, incident_id: int | None, decision: Decision) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    insert(at.decisions).values(
                        model_id=self.store.model_id(decision.model),
                        incident_id=incident_id,
                        ts=utcnow(),
                        diagnosis=decision.diagnosis.value,
                        action=decision.action.value,
                        notify=decision.notify,
                        params=_json(decision.params),
                        severity=decision.severity.value,
                        confidence=decision.confidence,
                        needs_approval=decision.needs_approval,
                        mode=decision.mode,
                        alternatives=_json(
                            [a.model_dump(mode="json") for a in decision.alternatives]
                        ),
                        rationale=decision.rationale,
                    )
                ).inserted_primary_key[0]
            )

    def get_decision(self, decision_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(at.decisions).where(at.decisions.c.id == decision_id)).first()
        if row is None:
            raise NotFound(f"no decision {decision_id}", decision=decision_id)
        return _row(row)

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
            return int(
                conn.execute(
                    insert(at.verifications).values(
                        model_id=self.store.model_id(model),
                        incident_id=incident_id,
                        action_id=action_id,
                        ts=utcnow(),
                        verdict=verdict,
                        windows=windows,
                        baseline=_json(dict(baseline)),
                        observed=_json(dict(observed)),
                        details=details,
                    )
                ).inserted_primary_key[0]
            )


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
        k: (_json(v) if isinstance(v, dict | list) else getattr(v, "value", v))
        for k, v in values.items()
    }


__all__ = ["ACCEPTED", "CLOSED_STATES", "OPEN_STATES", "AgentRepo"]
