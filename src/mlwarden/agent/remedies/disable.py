"""The ``disable`` action: stop predictions."""

from __future__ import annotations

from typing import Any

from mlwarden.agent.remedies.base import ExecEnv, Remedy, VerifyTarget, change_deployment
from mlwarden.agent.remedies.registry import register
from mlwarden.domain import ActionKind, DeploymentState
from mlwarden.store.journal import ActionRow


@register
class Disable(Remedy):
    """The gateway answers with the default response, or 503."""

    kind = ActionKind.DISABLE
    phrase = "disable the model"
    verifies = VerifyTarget.SYMPTOM  # refusals are the price paid on purpose
    weighed = True

    def execute(self, env: ExecEnv, action: ActionRow) -> dict[str, Any]:
        def mutate(state: DeploymentState) -> DeploymentState:
            return state.model_copy(update={"disabled": True})

        deployment = change_deployment(env, action, "disable", mutate, "disable predictions")
        return {"revision": deployment.revision}
