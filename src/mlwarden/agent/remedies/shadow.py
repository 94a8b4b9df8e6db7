"""The ``shadow`` action: a new version answers copies of the requests, never the caller."""

from __future__ import annotations

from typing import Any

from mlwarden.agent.remedies.base import (
    ExecEnv,
    Remedy,
    VerifyTarget,
    change_deployment,
    version_param,
)
from mlwarden.agent.remedies.registry import register
from mlwarden.domain import ActionKind, DeploymentState
from mlwarden.store.journal import ActionRow


@register
class Shadow(Remedy):
    kind = ActionKind.SHADOW
    phrase = "run a new version in shadow"
    verifies = VerifyTarget.BASELINE

    def execute(self, env: ExecEnv, action: ActionRow) -> dict[str, Any]:
        version = version_param(action, "version")

        def mutate(state: DeploymentState) -> DeploymentState:
            return state.model_copy(update={"shadow_version": version})

        deployment = change_deployment(env, action, "shadow", mutate, f"shadow version {version}")
        return {"version": version, "revision": deployment.revision}
