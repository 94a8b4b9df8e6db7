"""The ``canary`` action: part of the traffic to a new version."""

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
from mlwarden.errors import InvalidInput
from mlwarden.store.journal import ActionRow


@register
class Canary(Remedy):
    """``version`` takes ``weight`` of the traffic (default: the policy's
    ``retrain.canary_weight``)."""

    kind = ActionKind.CANARY
    phrase = "send part of the traffic to a new version"
    verifies = VerifyTarget.BASELINE

    def execute(self, env: ExecEnv, action: ActionRow) -> dict[str, Any]:
        version = version_param(action, "version")
        weight = float(action["params"].get("weight", env.policy.retrain.canary_weight))
        if not 0.0 < weight < 1.0:
            raise InvalidInput(f"canary weight must be between 0 and 1, got {weight}")

        def mutate(state: DeploymentState) -> DeploymentState:
            return state.model_copy(update={"canary_version": version, "canary_weight": weight})

        deployment = change_deployment(
            env, action, "canary", mutate, f"canary version {version} at {weight:.0%}"
        )
        return {"version": version, "weight": weight, "revision": deployment.revision}
