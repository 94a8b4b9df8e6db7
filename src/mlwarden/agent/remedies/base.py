"""What every remedy shares: the ``Remedy`` contract, its environment, exactly-once deployment
changes, the default undo, and the crash points of the crash tests."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from mlwarden.agent.journal import marker
from mlwarden.agent.operations import deployments
from mlwarden.agent.policy import ModelPolicy
from mlwarden.domain import ActionKind, Deployment, DeploymentState
from mlwarden.errors import Conflict, InvalidInput
from mlwarden.store.journal import ActionJournal, ActionRow
from mlwarden.store.repository import Store

CRASH_ENV = "MLWARDEN_AGENT_CRASH_AT"


def crashpoint(name: str) -> None:
    """Fault injection for the crash tests: SIGKILL this process at the named step.

    Only active when the environment variable ``MLWARDEN_AGENT_CRASH_AT`` equals ``name``; the
    steps are ``journaled``, ``started``, ``changed`` and ``done``.
    """
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class ExecEnv:
    """What a remedy needs: the store, the journal, the model's policy and who acts."""

    store: Store
    journal: ActionJournal
    policy: ModelPolicy
    actor: str = "agent"
    story: dict[str, Any] = field(default_factory=dict)  # context for alerts
    # signs alert webhooks; None: the settings' (MLWARDEN_WEBHOOK_SECRET), read when one is sent
    webhook_secret: str | None = None


class VerifyTarget(StrEnum):
    """Which symptom the verification after a remedy checks (``agent.verify``)."""

    NOTHING = "nothing"
    """It changes no routing: its incident is watched, not verified (none, alert)."""
    SYMPTOM = "symptom"
    """The failure the incident was about is gone. The remedy trades quality for safety on
    purpose (a lighter model, refusals): accuracy-like signals and the outputs' drift from the
    champion's reference are not held against it (fallback, disable)."""
    BASELINE = "baseline"
    """Every signal of the incident's scope is back at the pre-failure baseline, or at what the
    evidence said the remedy would serve when that is lower."""


class Remedy:
    """One action kind: how it runs, how it is undone, and what its verification checks.

    A subclass in its own module of ``agent.remedies``, decorated with
    ``agent.remedies.registry.register``, is the whole of a new action kind (with its member
    of ``domain.ActionKind``); ``agent.operations.actions`` runs and undoes it, ``agent.verify``
    reads ``verifies``, the loop ``replaces_live``, the dashboard ``phrase``.
    """

    kind: ClassVar[ActionKind]
    # what it does, as the object of "chose to …" (the dashboard's explanation)
    phrase: ClassVar[str]
    verifies: ClassVar[VerifyTarget] = VerifyTarget.BASELINE
    # it puts another version in the live one's place: when it falls short of the baseline,
    # the version it put in is weighed against the one it replaced before undoing it
    replaces_live: ClassVar[bool] = False
    # it changes how the model serves: held to the policy's minimum confidence, its daily
    # budget and cooldowns (``alert`` and ``none`` change nothing)
    remedial: ClassVar[bool] = True
    # it is scored on the incident's stored records beside doing nothing before it is chosen
    # (``agent.evidence``); the others are judged in their own way (canary, hindsight) or not
    weighed: ClassVar[bool] = False
    # it mends inputs at the gateway and only the values broken the way it names: on clean
    # requests it is the identity. Its verification looks at the findings of the features it
    # mends (not at a new defect elsewhere), and it is not released when the data is clean
    # again if it served better than doing nothing since it was taken (``agent.verify``)
    mends_inputs: ClassVar[bool] = False

    def execute(self, env: ExecEnv, action: ActionRow) -> dict[str, Any]:
        """Make the change (each deployment change through ``change_deployment``, exactly
        once); returns the result journaled with the action. Raising leaves the deployment as
        it was (``agent.operations.actions`` restores it)."""
        raise NotImplementedError

    def undo(self, env: ExecEnv, action: ActionRow, *, force: bool, keep_later: bool) -> int | None:
        """Take back what the done ``action`` changed; returns the revision it leaves.

        The default suits every remedy that changes the deployment: a three-way merge of the
        revision before the action, the one it left and the current one. A setting the action
        changed and nobody touched since gets its value from before; a setting someone else
        changed since (a release deployed a new live version while a canary ran) keeps the
        later change: restoring the whole revision once rolled a release back as a side effect
        of removing a canary. When a setting the action changed was changed again since, the
        undo is refused (``Conflict``) unless ``force`` (that setting goes back as well) or
        ``keep_later`` (the later change stays: the agent withdrawing its own remedy never
        overrides a person's).
        """
        model = action["model"]
        before, after = action["before_revision"], action["after_revision"]
        revision = current_revision(env.store, model)
        if before is None or before == after or after is None:
            return revision
        merged, conflicts = _undone_state(env.store, model, before, after)
        if conflicts and not (force or keep_later):
            names = ", ".join(sorted(conflicts))
            raise Conflict(
                f"the deployment of {model!r} changed since action {action['id']} "
                f"({names}: now revision {revision}, the action left {after}); "
                "undo with force to override"
            )
        if force:
            merged = merged.model_copy(update=conflicts)
        current = env.store.get_deployment(model)
        if current is not None and deployments.state_of(current) == merged:
            return revision
        return deployments.write(
            env.store,
            model,
            merged,
            actor=env.actor,
            reason=f"undo {marker(action['id'])}",
            event=None,
        ).revision


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


def current_revision(store: Store, model: str) -> int | None:
    deployment = store.get_deployment(model)
    return None if deployment is None else deployment.revision


def change_deployment(
    env: ExecEnv,
    action: ActionRow,
    step: str,
    mutate: Callable[[DeploymentState], DeploymentState],
    reason: str,
) -> Deployment:
    """Apply one deployment change of an action exactly once.

    When a revision tagged ``[action N] step`` exists after the action's ``before_revision``,
    an earlier attempt already made this change (the agent died before marking it done), and
    that revision is returned instead of writing a second one.
    """
    model = action["model"]
    tag = f"{marker(action['id'])} {step}"
    before = action.get("before_revision") or 0
    for revision in env.store.deployment_history(model, limit=50):
        if revision.revision <= before:
            break
        if revision.reason.startswith(tag):
            return revision
    current = env.store.get_deployment(model)
    if current is None:
        raise InvalidInput(f"model {model!r} is not deployed; nothing to {step}")
    # on the model's timeline as ``step``, audited as ``deployment.<step>``
    return deployments.write(
        env.store,
        model,
        mutate(deployments.state_of(current)),
        actor=env.actor,
        reason=reason,
        event=step,
        details={"action": action["id"]},
        note=f"{tag}: {reason}",
    )


def version_param(action: ActionRow, key: str = "to_version") -> int:
    """The integer version an action's parameters name under ``key``."""
    value = action["params"].get(key)
    if not isinstance(value, int):
        raise InvalidInput(f"{action['kind']} needs an integer {key!r} parameter, got {value!r}")
    return value
