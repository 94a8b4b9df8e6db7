"""The one writer of deployment revisions, and the one rule that picks a rollback target.

Every change of a model's routing (a person's deploy, the agent's remedy, an undo) becomes a
new revision written here; the event on the model's timeline and the audit entry are written
with it, so the model page, the audit log and the revision history never disagree.

>>> rollback_target([3, 2, 1], current=3)
2
>>> rollback_target([3, 3, 1], current=3)
1
>>> rollback_target([3], current=3) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mlwarden.domain import Deployment, DeploymentState
from mlwarden.errors import Conflict, NotFound
from mlwarden.store.repository import Store

STATE_FIELDS = frozenset(DeploymentState.model_fields)


def state_of(deployment: Deployment | None) -> DeploymentState:
    """The routing part of a revision (an empty routing before the first deploy)."""
    if deployment is None:
        return DeploymentState()
    return DeploymentState.model_validate(deployment.model_dump(include=set(STATE_FIELDS)))


def write(
    store: Store,
    model: str,
    state: DeploymentState,
    *,
    actor: str,
    reason: str,
    event: str | None,
    details: Mapping[str, Any] | None = None,
    environment: str = "production",
    note: str | None = None,
) -> Deployment:
    """Write ``state`` as a new revision of ``model``'s routing.

    The revision's own reason is ``note`` when given (an action's tagged reason, which makes a
    resumed action find the change it already made), else ``reason``. With an ``event`` the
    change lands on the model's timeline under that name and in the audit log as
    ``deployment.<event>`` with ``details``, the revision and the reason; without one the
    caller audits it itself (an undo of an action is audited as ``action.undo``).
    """
    deployment = store.set_deployment(
        model,
        state,
        actor=actor,
        reason=note if note is not None else reason,
        environment=environment,
    )
    if event is not None:
        info = {"revision": deployment.revision, "reason": reason, **(details or {})}
        store.add_event(model, event, actor, info)
        store.audit(actor, f"deployment.{event}", model, info)
    return deployment


def restore(
    store: Store,
    model: str,
    revision: int,
    *,
    actor: str,
    reason: str,
    environment: str = "production",
    event: bool = True,
) -> Deployment:
    """Write revision ``revision`` again as a new revision (an undo); with ``event`` it is on
    the timeline as ``undo`` and audited as ``deployment.undo``."""
    deployment = store.undo_deployment(
        model, revision, actor=actor, reason=reason, environment=environment
    )
    if event:
        info = {
            "environment": environment,
            "revision": deployment.revision,
            "restored": revision,
            "reason": reason,
        }
        store.add_event(model, "undo", actor, info)
        store.audit(actor, "deployment.undo", model, info)
    return deployment


def live_versions(history: Iterable[Deployment]) -> list[int]:
    """The live version of each revision, newest first, a repeat of the one before dropped."""
    found: list[int] = []
    for revision in history:
        number = revision.live_version
        if number is not None and (not found or found[-1] != number):
            found.append(number)
    return found


def rollback_target(live: Iterable[int], current: int | None) -> int | None:
    """The version that served before ``current``: the newest earlier live version that is
    not the current one (``live`` newest first). The one rule for the agent, the API, the
    dashboard, the command line and the assistant; whether that version may serve (its
    health) is checked separately by each, since the agent also weighs evidence."""
    for number in live:
        if number != current:
            return number
    return None


def rollback_choice(store: Store, model: str, environment: str = "production") -> tuple[int, int]:
    """``(current, target)`` of a rollback asked for by a person: the rule of
    ``rollback_target`` over the stored history; refused when there is nothing to roll back to
    or the target is marked unhealthy (a person then deploys the version they want)."""
    history = store.deployment_history(model, environment, limit=200)
    if not history or history[0].live_version is None:
        raise NotFound(f"model {model!r} has no live version in {environment!r} to roll back")
    current = history[0].live_version
    target = rollback_target(live_versions(history), current)
    if target is None:
        raise Conflict(
            f"no earlier live version to roll back to for model {model!r}: only version "
            f"{current} has served",
            model=model,
        )
    health = store.get_version(model, target).health
    if health == "unhealthy":
        raise Conflict(
            f"version {target} of {model!r}, the version that served before {current}, is "
            "marked unhealthy; deploy the version you want instead",
            model=model,
        )
    return current, target


__all__ = [
    "STATE_FIELDS",
    "live_versions",
    "restore",
    "rollback_choice",
    "rollback_target",
    "state_of",
    "write",
]
