"""What every executor shares: its environment, exactly-once deployment changes, and the crash
points of the crash tests."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlwarden.agent.journal import marker
from mlwarden.agent.operations import deployments
from mlwarden.agent.policy import ModelPolicy
from mlwarden.domain import Deployment, DeploymentState
from mlwarden.errors import InvalidInput
from mlwarden.store.journal import ActionJournal
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
    """What an executor needs: the store, the journal, the model's policy and who acts."""

    store: Store
    journal: ActionJournal
    policy: ModelPolicy
    actor: str = "agent"
    story: dict[str, Any] = field(default_factory=dict)  # context for alerts
    # signs alert webhooks; None: the settings' (MLWARDEN_WEBHOOK_SECRET), read when one is sent
    webhook_secret: str | None = None


def current_revision(store: Store, model: str) -> int | None:
    deployment = store.get_deployment(model)
    return None if deployment is None else deployment.revision


def change_deployment(
    env: ExecEnv,
    action: dict[str, Any],
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


Executor = Callable[[ExecEnv, dict[str, Any]], dict[str, Any]]
