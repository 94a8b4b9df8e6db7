"""The ``fallback`` action: all traffic to the fallback version."""

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
class Fallback(Remedy):
    """All traffic goes to the fallback version. The version it replaces keeps answering
    copies of the requests as a shadow (unless a shadow runs already), so the agent sees when
    it is healthy again and can hand the traffic back (``champion_shadow`` in the result)."""

    kind = ActionKind.FALLBACK
    phrase = "switch to the fallback version"
    verifies = VerifyTarget.SYMPTOM  # a lighter model serves: its accuracy is not the question
    weighed = True
    replaces_live = True

    def execute(self, env: ExecEnv, action: ActionRow) -> dict[str, Any]:
        target = version_param(action)
        previous: dict[str, Any] = {}

        def mutate(state: DeploymentState) -> DeploymentState:
            if state.fallback_version != target:
                raise Conflict(f"version {target} is no longer the fallback of {action['model']!r}")
            previous["live"] = state.live_version
            update: dict[str, Any] = {
                "live_version": target,
                "canary_version": None,
                "canary_weight": 0.0,
            }
            if state.shadow_version is None and state.live_version not in (None, target):
                update["shadow_version"] = state.live_version
                previous["shadow"] = state.live_version
            return state.model_copy(update=update)

        deployment = change_deployment(
            env, action, "fallback", mutate, f"send traffic to fallback version {target}"
        )
        return {
            "to_version": target,
            "from_version": previous.get("live"),
            "champion_shadow": previous.get("shadow"),
            "revision": deployment.revision,
        }
