"""The action journal: written before an action touches anything, so a crash never loses one.

States: ``pending`` (journaled, not started) → ``running`` (started; the deployment revision
before is recorded) → ``done`` (the revision after is recorded) or ``failed`` (the deployment is
as it was); a done action can become ``undone``. Every change of the deployment an action makes
carries the marker ``[action N]`` in its reason, which is how a restarted agent tells an action
that already took effect from one that did not, and why no action ever runs twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from mlwarden.agent.guards import PastAction
from mlwarden.clock import as_utc, utcnow
from mlwarden.domain import ActionKind
from mlwarden.errors import Conflict, NotFound
from mlwarden.store import agent_tables as at
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store
from mlwarden.store.repository import as_json as _json
from mlwarden.store.repository import plain_row as _row

IN_FLIGHT = ("pending", "running")


def marker(action_id: int) -> str:
    """The tag every deployment change of action ``action_id`` carries in its reason."""
    return f"[action {action_id}]"


class ActionJournal:
    """The ``actions`` table of one ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    def create(
        self,
        model: str,
        kind: ActionKind,
        params: Mapping[str, Any] | None = None,
        *,
        actor: str = "agent",
        incident_id: int | None = None,
        decision_id: int | None = None,
        approval_id: int | None = None,
    ) -> int:
        """Journal an action in state ``pending`` and return its id."""
        with self.engine.begin() as conn:
            action_id = int(
                conn.execute(
                    insert(at.actions).values(
                        model_id=self.store.model_id(model),
                        incident_id=incident_id,
                        decision_id=decision_id,
                        approval_id=approval_id,
                        kind=ActionKind(kind).value,
                        state="pending",
                        params=_json(dict(params or {})),
                        actor=actor,
                        attempts=0,
                        result={},
                        created_at=utcnow(),
                    )
                ).inserted_primary_key[0]
            )
        self.store.audit(
            actor, "action.journal", f"{model}/action/{action_id}", {"kind": ActionKind(kind).value}
        )
        return action_id

    def get(self, action_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(at.actions).where(at.actions.c.id == action_id)).first()
        if row is None:
            raise NotFound(f"no action {action_id}", action=action_id)
        out = _row(row)
        out["model"] = self._name(out["model_id"])
        return out

    def _name(self, model_id: int) -> str:
        return AgentRepo(self.store)._model_name(model_id)

    def _set(self, action_id: int, expected: tuple[str, ...], **values: Any) -> None:
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(at.actions)
                .where(at.actions.c.id == action_id, at.actions.c.state.in_(expected))
                .values(**values)
            ).rowcount
        if not changed:
            state = self.get(action_id)["state"]
            raise Conflict(
                f"action {action_id} is {state}; expected one of {', '.join(expected)}",
                action=action_id,
                state=state,
            )

    def start(self, action_id: int, before_revision: int | None) -> None:
        """pending/running → running; keeps the first recorded ``before_revision``."""
        row = self.get(action_id)
        before = row["before_revision"] if row["state"] == "running" else before_revision
        self._set(
            action_id,
            ("pending", "running"),
            state="running",
            before_revision=before,
            attempts=row["attempts"] + 1,
            started_at=row["started_at"] or utcnow(),
        )

    def progress(self, action_id: int, **result: Any) -> None:
        """Merge ``result`` into the action's recorded result (steps of a long action)."""
        merged = {**self.get(action_id)["result"], **_json(result)}
        self._set(action_id, ("running",), result=merged)

    def finish(self, action_id: int, after_revision: int | None, **result: Any) -> None:
        merged = {**self.get(action_id)["result"], **_json(result)}
        self._set(
            action_id,
            ("running",),
            state="done",
            after_revision=after_revision,
            result=merged,
            finished_at=utcnow(),
        )

    def fail(self, action_id: int, error: str, after_revision: int | None = None) -> None:
        self._set(
            action_id,
            ("pending", "running"),
            state="failed",
            error=error,
            after_revision=after_revision,
            finished_at=utcnow(),
        )

    def mark_undone(self, action_id: int, revision: int | None) -> None:
        row = self.get(action_id)
        result = {**row["result"], "undo_revision": revision}
        self._set(action_id, ("done",), state="undone", undone_at=utcnow(), result=result)

    def list(
        self,
        model: str | None = None,
        state: str | None = None,
        incident_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        a = at.actions
        query = select(a)
        if model is not None:
            query = query.where(a.c.model_id == self.store.model_id(model))
        if state is not None:
            query = query.where(a.c.state == state)
        if incident_id is not None:
            query = query.where(a.c.incident_id == incident_id)
        with self.engine.connect() as conn:
            rows = [_row(r) for r in conn.execute(query.order_by(a.c.id.desc()).limit(limit))]
        names: dict[int, str] = {}
        for row in rows:
            row["model"] = names.setdefault(row["model_id"], self._name(row["model_id"]))
        return rows

    def in_flight(self, model: str | None = None) -> list[dict[str, Any]]:
        """Actions journaled but not finished (oldest first): what a restarted agent resumes."""
        a = at.actions
        query = select(a.c.id).where(a.c.state.in_(IN_FLIGHT))
        if model is not None:
            query = query.where(a.c.model_id == self.store.model_id(model))
        with self.engine.connect() as conn:
            ids = list(conn.execute(query.order_by(a.c.id)).scalars())
        return [self.get(i) for i in ids]

    def past(self, model: str, now: datetime, days: float = 1.0) -> list[PastAction]:
        """Actions of the last ``days`` days, for cooldowns and the daily limit."""
        a = at.actions
        since = now - timedelta(days=days)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(a.c.kind, a.c.created_at, a.c.state, a.c.incident_id).where(
                    a.c.model_id == self.store.model_id(model), a.c.created_at >= since
                )
            ).all()
        return [
            PastAction(ActionKind(r.kind), as_utc(r.created_at), r.state, r.incident_id)
            for r in rows
        ]


# what a long action is doing, by the step its executor last recorded (``ActionJournal.progress``)
_STEPS = {
    "training": "training a candidate on {train_rows} labelled records",
    "validating": "scoring candidate and champion on {holdout_rows} held-out recent records",
    "registered": "candidate version {candidate_version} registered; staging it",
}


def progress_of(action: Mapping[str, Any]) -> str:
    """Where an action stands, in a sentence for the incident page and the CLI.

    >>> progress_of({"state": "pending", "approval_id": 3, "kind": "retrain", "result": {}})
    'approved (approval 3); the agent runs it on its next pass'
    >>> progress_of({"state": "running", "kind": "retrain",
    ...              "result": {"step": "training", "train_rows": 3500}})
    'running: training a candidate on 3500 labelled records'
    >>> progress_of({"state": "done", "kind": "retrain", "result": {"watching": "canary",
    ...              "candidate_version": 7, "promoted": None}})
    'candidate version 7 serves as canary; promoted only once its own records hold up'
    """
    state, result = action["state"], action.get("result") or {}
    if state == "pending":
        if action.get("approval_id") is not None:
            return (f"approved (approval {action['approval_id']}); the agent runs it on its next "
                    "pass")
        return "queued; the agent runs it on its next pass"
    if state == "running":
        step = result.get("step")
        template = _STEPS.get(step or "")
        try:
            text = template.format(**result) if template else (step or "started")
        except KeyError:
            text = step or "started"
        return f"running: {text}"
    if state == "failed":
        return f"failed: {action.get('error') or 'see the error'}"
    if state == "undone":
        return "undone"
    if result.get("outcome"):
        return str(result["outcome"])
    if result.get("watching") and result.get("promoted") is None:
        return (f"candidate version {result.get('candidate_version')} serves as "
                f"{result['watching']}; promoted only once its own records hold up")
    return "done"


__all__ = ["IN_FLIGHT", "ActionJournal", "marker", "progress_of"]
