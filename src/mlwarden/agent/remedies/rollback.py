"""The ``rollback`` action: live goes back to the version that served before."""

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
from mlwarden.errors import Conflict
from mlwarden.store.journal import ActionRow


@register
class Rollback(Remedy):
    """Live goes back to ``to_version`` (chosen by ``agent.operations.deployments.
    rollback_target``); the version it replaces is marked unhealthy."""

    kind = ActionKind.ROLLBACK
    phrase = "roll back to the version that served before"
    verifies = VerifyTarget.BASELINE
    weighed = True
    replaces_live = True

    def execute(self, env: ExecEnv, action: ActionRow) -> dict[str, Any]:
        target = version_param(action)
        model = action["model"]
        health = env.store.get_version(model, target).health
        proven = action["params"].get("evidence", {}).get("chosen") == "rollback"
        if health == "unhealthy" or (health != "healthy" and not proven):
            # the guard in decide() already checked; the store may have changed since. A
            # version of unknown health only when the evidence weighed it better on the
            # incident's records
            raise Conflict(
                f"version {target} of {model!r} is {health}; refusing to roll back to it"
            )
        bad: dict[str, Any] = {}

        def mutate(state: DeploymentState) -> DeploymentState:
            bad["version"] = state.live_version
            return state.model_copy(
                update={"live_version": target, "canary_version": None, "canary_weight": 0.0}
            )

        deployment = change_deployment(
            env, action, "rollback", mutate, f"roll back to version {target}"
        )
        if bad.get("version") not in (None, target):
            env.store.set_version_health(model, bad["version"], "unhealthy")
        return {
            "to_version": target,
            "from_version": bad.get("version"),
            "revision": deployment.revision,
        }
