"""The ``promote`` action: a validated candidate becomes the live version."""

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


def promoted(state: DeploymentState, version: int) -> DeploymentState:
    """``state`` with ``version`` live, no longer also canary or shadow."""
    update: dict[str, Any] = {"live_version": version}
    if state.canary_version == version:
        update |= {"canary_version": None, "canary_weight": 0.0}
    if state.shadow_version == version:
        update["shadow_version"] = None
    return state.model_copy(update=update)


@register
class Promote(Remedy):
    """Make a version live; requires the evidence that it beat the champion."""

    kind = ActionKind.PROMOTE
    phrase = "promote the canary to serve all traffic"
    verifies = VerifyTarget.BASELINE
    replaces_live = True

    def execute(self, env: ExecEnv, action: ActionRow) -> dict[str, Any]:
        version = version_param(action, "version")
        if not action["params"].get("validated"):
            raise Conflict(
                f"version {version} has no held-out validation against the champion; not promoting"
            )
        replaced: dict[str, Any] = {}

        def mutate(state: DeploymentState) -> DeploymentState:
            replaced["version"] = state.live_version
            return promoted(state, version)

        deployment = change_deployment(env, action, "promote", mutate, f"promote version {version}")
        # like a rollback's: the verification weighs the version put in against the one replaced
        return {
            "version": version,
            "to_version": version,
            "from_version": replaced.get("version"),
            "revision": deployment.revision,
        }
