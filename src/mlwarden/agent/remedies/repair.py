"""The ``repair`` action: the gateway mends broken inputs before the live version answers."""

from __future__ import annotations

from typing import Any

from mlwarden.agent.remedies.base import ExecEnv, Remedy, VerifyTarget, change_deployment
from mlwarden.agent.remedies.registry import register
from mlwarden.domain import ActionKind, DeploymentState, FeatureRepair
from mlwarden.errors import InvalidInput
from mlwarden.store.journal import ActionRow


@register
class Repair(Remedy):
    """The gateway mends the named features of every request (``domain.FeatureRepair``)
    before the live version answers; undone like any deployment change."""

    kind = ActionKind.REPAIR
    phrase = "repair the broken inputs before the model sees them"
    verifies = VerifyTarget.BASELINE
    weighed = True
    mends_inputs = True

    def execute(self, env: ExecEnv, action: ActionRow) -> dict[str, Any]:
        raw = action["params"].get("input_repair")
        if not isinstance(raw, dict) or not raw:
            raise InvalidInput("repair needs a non-empty 'input_repair' parameter")
        plan = {name: FeatureRepair.model_validate(rule) for name, rule in raw.items()}
        what = ", ".join(sorted(plan))

        def mutate(state: DeploymentState) -> DeploymentState:
            return state.model_copy(update={"input_repair": {**state.input_repair, **plan}})

        deployment = change_deployment(env, action, "repair", mutate, f"repair inputs: {what}")
        return {"features": sorted(plan), "revision": deployment.revision}
