"""The action journal: written before an action touches anything, so a crash never loses one.

States (``domain.ActionState``): ``pending`` (journaled, not started) → ``running`` (started;
the deployment revision before is recorded) → ``done`` (the revision after is recorded) or
``failed`` (the deployment is as it was); a done action can become ``undone``. A state moves
only along ``TRANSITIONS`` (``Conflict`` otherwise), checked in the same ``UPDATE`` that moves
it, so two runners never both start one action.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from sqlalchemy import insert, select, update

from mlwarden.clock import as_utc, utcnow
from mlwarden.domain import ActionKind, ActionState
from mlwarden.errors import Conflict, NotFound
from mlwarden.store import agent_tables as at
from mlwarden.store.base import as_json, inserted_id, plain_row, with_model_name
from mlwarden.store.repository import Store


@dataclass
class PastAction:
    """An action already taken on the model (for cooldowns and the daily limit)."""

    kind: ActionKind
    at: datetime
    state: ActionState
    incident_id: int | None = None
    # the scope (cause class) of its incident: a remedy's cooldown is per cause
    scope: str | None = None


_S = ActionState
# the legal moves. ``running`` → ``running`` is a resumed action (a restarted agent picks it up)
# and a long action's progress; ``done`` and ``failed`` are final but for an undo.
TRANSITIONS: Mapping[ActionState, frozenset[ActionState]] = {
    _S.PENDING: frozenset({_S.RUNNING, _S.FAILED}),
    _S.RUNNING: frozenset({_S.RUNNING, _S.DONE, _S.FAILED}),
    _S.DONE: frozenset({_S.UNDONE}),
    _S.FAILED: frozenset(),
    _S.UNDONE: frozenset(),
}

IN_FLIGHT = (_S.PENDING, _S.RUNNING)


def coming_from(state: ActionState) -> tuple[ActionState, ...]:
    """The states an action may move to ``state`` from (``TRANSITIONS``).

    >>> [s.value for s in coming_from(ActionState.RUNNING)]
    ['pending', 'running']
    """
    return tuple(s for s in ActionState if state in TRANSITIONS[s])


class ActionRow(TypedDict):
    """A journaled action as the store returns it: its columns, ``kind`` and ``state`` as
    their enums (``str`` both: ``row["state"] == "done"`` holds), and ``model`` by name."""

    id: int
    model_id: int
    model: str
    incident_id: int | None
    decision_id: int | None
    approval_id: int | None
    kind: ActionKind
    state: ActionState
    params: dict[str, Any]
    actor: str
    before_revision: int | None
    after_revision: int | None
    attempts: int
    result: dict[str, Any]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    undone_at: datetime | None


def _action(row: Any) -> ActionRow:
    out = plain_row(row)
    out["kind"] = ActionKind(out["kind"])
    out["state"] = ActionState(out["state"])
    return cast(ActionRow, out)


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
            action_id = inserted_id(
                conn.execute(
                    insert(at.actions).values(
                        model_id=self.store.model_id(model),
                        incident_id=incident_id,
                        decision_id=decision_id,
                        approval_id=approval_id,
                        kind=ActionKind(kind).value,
                        state=_S.PENDING,
                        params=as_json(dict(params or {})),
                        actor=actor,
                        attempts=0,
                        result={},
                        created_at=utcnow(),
                    )
                )
            )
        self.store.audit(
            actor, "action.journal", f"{model}/action/{action_id}", {"kind": ActionKind(kind).value}
        )
        return action_id

    def get(self, action_id: int) -> ActionRow:
        with self.engine.connect() as conn:
            row = conn.execute(
                with_model_name(select(at.actions), at.actions).where(at.actions.c.id == action_id)
            ).first()
        if row is None:
            raise NotFound(f"no action {action_id}", action=action_id)
        return _action(row)

    def _set(self, action_id: int, expected: Sequence[ActionState], **values: Any) -> None:
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(at.actions)
                .where(at.actions.c.id == action_id, at.actions.c.state.in_(expected))
                .values(**values)
            ).rowcount
        if not changed:
            state = self.get(action_id)["state"]
            raise Conflict(
                f"action {action_id} is {state.value}; expected one of {', '.join(expected)}",
                action=action_id,
                state=state,
            )

    def start(self, action_id: int, before_revision: int | None) -> None:
        """pending/running → running; keeps the first recorded ``before_revision``."""
        row = self.get(action_id)
        before = row["before_revision"] if row["state"] is _S.RUNNING else before_revision
        self._set(
            action_id,
            coming_from(_S.RUNNING),
            state=_S.RUNNING,
            before_revision=before,
            attempts=row["attempts"] + 1,
            started_at=row["started_at"] or utcnow(),
        )

    def progress(self, action_id: int, **result: Any) -> None:
        """Merge ``result`` into the action's recorded result (steps of a long action)."""
        merged = {**self.get(action_id)["result"], **as_json(result)}
        self._set(action_id, (_S.RUNNING,), result=merged)

    def finish(self, action_id: int, after_revision: int | None, **result: Any) -> None:
        merged = {**self.get(action_id)["result"], **as_json(result)}
        self._set(
            action_id,
            coming_from(_S.DONE),
            state=_S.DONE,
            after_revision=after_revision,
            result=merged,
            finished_at=utcnow(),
        )

    def fail(self, action_id: int, error: str, after_revision: int | None = None) -> None:
        self._set(
            action_id,
            coming_from(_S.FAILED),
            state=_S.FAILED,
            error=error,
            after_revision=after_revision,
            finished_at=utcnow(),
        )

    def mark_undone(self, action_id: int, revision: int | None) -> None:
        row = self.get(action_id)
        result = {**row["result"], "undo_revision": revision}
        self._set(
            action_id, coming_from(_S.UNDONE), state=_S.UNDONE, undone_at=utcnow(), result=result
        )

    def list(
        self,
        model: str | None = None,
        state: str | None = None,
        incident_id: int | None = None,
        limit: int = 100,
    ) -> list[ActionRow]:
        """The newest ``limit`` actions (of ``model``, in ``state``, of ``incident_id``), newest
        first: one query, the model's name joined in."""
        a = at.actions
        query = with_model_name(select(a), at.actions)
        if model is not None:
            query = query.where(a.c.model_id == self.store.model_id(model))
        if state is not None:
            query = query.where(a.c.state == state)
        if incident_id is not None:
            query = query.where(a.c.incident_id == incident_id)
        with self.engine.connect() as conn:
            return [_action(r) for r in conn.execute(query.order_by(a.c.id.desc()).limit(limit))]

    def in_flight(self, model: str | None = None) -> builtins.list[ActionRow]:
        """Actions journaled but not finished (oldest first): what a restarted agent resumes."""
        a = at.actions
        query = with_model_name(select(a), at.actions).where(a.c.state.in_(IN_FLIGHT))
        if model is not None:
            query = query.where(a.c.model_id == self.store.model_id(model))
        with self.engine.connect() as conn:
            return [_action(r) for r in conn.execute(query.order_by(a.c.id))]

    def past(self, model: str, now: datetime, days: float = 1.0) -> builtins.list[PastAction]:
        """Actions of the last ``days`` days, for cooldowns and the daily limit."""
        a, i = at.actions, at.incidents
        since = now - timedelta(days=days)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(a.c.kind, a.c.created_at, a.c.state, a.c.incident_id, i.c.scope)
                .select_from(a.outerjoin(i, a.c.incident_id == i.c.id))
                .where(a.c.model_id == self.store.model_id(model), a.c.created_at >= since)
            ).all()
        return [
            PastAction(
                ActionKind(r.kind),
                as_utc(r.created_at),
                ActionState(r.state),
                r.incident_id,
                r.scope,
            )
            for r in rows
        ]
