"""Run and undo journaled actions: each journaled before it runs, idempotent, undoable, audited.

``run_action(env, action_id)`` moves a journaled action through ``pending → running → done``
(or ``failed``), records the deployment revision before and after, and, when the executor
raises, puts the deployment back as it was. Running it again on an action that crashed
half-way finishes it without repeating what already took effect (see ``journal.marker``).
``undo_action`` takes back what a done action changed and nothing else. Both are reached
through ``operations.service.Operations``.
"""

from __future__ import annotations

from typing import Any

from mlwarden.agent.executors import EXECUTORS
from mlwarden.agent.executors.base import ExecEnv, crashpoint, current_revision
from mlwarden.agent.journal import marker
from mlwarden.agent.operations import deployments
from mlwarden.domain import ActionKind, DeploymentState
from mlwarden.errors import Conflict, MlwardenError
from mlwarden.store.repository import Store


def run_action(env: ExecEnv, action_id: int) -> dict[str, Any]:
    """Run (or resume) a journaled action; returns its final journal row.

    A done, failed or undone action is returned as it is: running an action twice is a no-op.
    """
    action = env.journal.get(action_id)
    if action["state"] not in ("pending", "running"):
        return action
    model = action["model"]
    kind = ActionKind(action["kind"])
    env.journal.start(action_id, current_revision(env.store, model))
    crashpoint("started")
    action = env.journal.get(action_id)
    try:
        if kind is ActionKind.NONE:
            result: dict[str, Any] = {}
        else:
            result = EXECUTORS[kind](env, action)
    except Exception as exc:  # any failure must leave the deployment as it was
        restored = _restore(env, action)
        message = exc.message if isinstance(exc, MlwardenError) else f"{type(exc).__name__}: {exc}"
        env.journal.fail(action_id, message, after_revision=restored)
        env.store.audit(
            env.actor, "action.failed", f"{model}/action/{action_id}", {"error": message}
        )
        return env.journal.get(action_id)
    crashpoint("changed")
    env.journal.finish(action_id, current_revision(env.store, model), **result)
    env.store.audit(
        env.actor,
        "action.done",
        f"{model}/action/{action_id}",
        {"kind": kind.value, "result": result},
    )
    crashpoint("done")
    return env.journal.get(action_id)


def _restore(env: ExecEnv, action: dict[str, Any]) -> int | None:
    """Put the deployment back at the action's ``before_revision`` if the action changed it."""
    before = action.get("before_revision")
    now = current_revision(env.store, action["model"])
    if before is None or now == before:
        return now
    restored = deployments.restore(
        env.store,
        action["model"],
        before,
        actor=env.actor,
        reason=f"{marker(action['id'])} restore: the action failed",
        event=False,
    )
    return restored.revision


def undo_action(
    env: ExecEnv, action_id: int, *, force: bool = False, keep_later: bool = False
) -> dict[str, Any]:
    """Undo a done action: what the action changed in the deployment goes back, and nothing else.

    The undo is a three-way merge of the revision before the action, the one it left and the
    current one. A setting the action changed and nobody touched since gets its value from
    before; a setting someone else changed since the action (a release deployed a new live
    version while a canary ran) keeps the later change. Restoring the whole revision instead
    once rolled a release back as a side effect of removing a canary. When a setting the action
    changed was changed again since, the undo is refused (``Conflict``) unless ``force`` (that
    setting goes back as well) or ``keep_later`` (the later change stays: the agent withdrawing
    its own remedy never overrides a person's).
    """
    action = env.journal.get(action_id)
    if action["state"] == "undone":
        return action
    if action["state"] != "done":
        raise Conflict(f"action {action_id} is {action['state']}; only a done action can be undone")
    model = action["model"]
    before, after = action["before_revision"], action["after_revision"]
    revision = current_revision(env.store, model)
    if before is None or before == after or after is None:
        env.journal.mark_undone(action_id, revision)
    else:
        merged, conflicts = _undone_state(env.store, model, before, after)
        if conflicts and not (force or keep_later):
            names = ", ".join(sorted(conflicts))
            raise Conflict(
                f"the deployment of {model!r} changed since action {action_id} "
                f"({names}: now revision {revision}, the action left {after}); "
                "undo with force to override"
            )
        if force:
            merged = merged.model_copy(update=conflicts)
        current = env.store.get_deployment(model)
        if current is not None and deployments.state_of(current) == merged:
            env.journal.mark_undone(action_id, revision)
        else:
            restored = deployments.write(
                env.store,
                model,
                merged,
                actor=env.actor,
                reason=f"undo {marker(action_id)}",
                event=None,
            )
            env.journal.mark_undone(action_id, restored.revision)
    env.store.audit(env.actor, "action.undo", f"{model}/action/{action_id}", {"to": before})
    return env.journal.get(action_id)


def _undone_state(
    store: Store, model: str, before: int, after: int
) -> tuple[DeploymentState, dict[str, Any]]:
    """The current deployment with the settings action ``before → after`` changed set back, and
    the before-values of those the action changed that someone changed again since."""
    state_of = deployments.state_of
    old = state_of(store.get_deployment_revision(model, before)).model_dump()
    left = state_of(store.get_deployment_revision(model, after)).model_dump()
    current = store.get_deployment(model)
    now = left if current is None else state_of(current).model_dump()
    merged = dict(now)
    conflicts: dict[str, Any] = {}
    for name, value in old.items():
        if value == left[name]:
            continue  # not the action's change
        if now[name] == left[name]:
            merged[name] = value
        else:
            conflicts[name] = value
    return DeploymentState.model_validate(merged), conflicts


__all__ = ["run_action", "undo_action"]
