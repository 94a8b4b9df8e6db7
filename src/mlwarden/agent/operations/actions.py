"""Run and undo journaled actions: each journaled before it runs, idempotent, undoable, audited.

``run_action(env, action_id)`` moves a journaled action through ``pending → running → done``
(or ``failed``) by its kind's remedy (``agent.remedies``), records the deployment revision
before and after, and, when the remedy raises, puts the deployment back as it was. Running it
again on an action that crashed half-way finishes it without repeating what already took
effect (see ``journal.marker``).
``undo_action`` takes back what a done action changed and nothing else. Both are reached
through ``operations.service.Operations``.
"""

from __future__ import annotations

from mlwarden.agent.journal import marker
from mlwarden.agent.operations import deployments
from mlwarden.agent.remedies.base import ExecEnv, crashpoint, current_revision
from mlwarden.agent.remedies.registry import remedy_for
from mlwarden.domain import ActionState
from mlwarden.errors import Conflict, MlwardenError
from mlwarden.store.journal import IN_FLIGHT, ActionRow


def run_action(env: ExecEnv, action_id: int) -> ActionRow:
    """Run (or resume) a journaled action; returns its final journal row.

    A done, failed or undone action is returned as it is: running an action twice is a no-op.
    """
    action = env.journal.get(action_id)
    if action["state"] not in IN_FLIGHT:
        return action
    model = action["model"]
    remedy = remedy_for(action["kind"])
    env.journal.start(action_id, current_revision(env.store, model))
    crashpoint("started")
    action = env.journal.get(action_id)
    try:
        result = remedy.execute(env, action)
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
        {"kind": remedy.kind.value, "result": result},
    )
    crashpoint("done")
    return env.journal.get(action_id)


def _restore(env: ExecEnv, action: ActionRow) -> int | None:
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
) -> ActionRow:
    """Undo a done action by its kind's remedy (``Remedy.undo``: for a deployment change, a
    three-way merge that takes back what the action changed and nothing else; ``force`` and
    ``keep_later`` decide a setting someone changed again since)."""
    action = env.journal.get(action_id)
    if action["state"] is ActionState.UNDONE:
        return action
    if action["state"] is not ActionState.DONE:
        raise Conflict(f"action {action_id} is {action['state']}; only a done action can be undone")
    model = action["model"]
    revision = remedy_for(action["kind"]).undo(env, action, force=force, keep_later=keep_later)
    env.journal.mark_undone(action_id, revision)
    env.store.audit(
        env.actor, "action.undo", f"{model}/action/{action_id}", {"to": action["before_revision"]}
    )
    return env.journal.get(action_id)


__all__ = ["run_action", "undo_action"]
