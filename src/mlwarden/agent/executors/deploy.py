"""Deployment moves chosen by the agent: rollback, fallback, disable, canary, shadow, promote,
repair."""

from __future__ import annotations

from typing import Any

from mlwarden.agent.executors.base import ExecEnv, change_deployment
from mlwarden.domain import DeploymentState, FeatureRepair
from mlwarden.errors import Conflict, InvalidInput


def _version(action: dict[str, Any], key: str = "to_version") -> int:
    value = action["params"].get(key)
    if not isinstance(value, int):
        raise InvalidInput(f"{action['kind']} needs an integer {key!r} parameter, got {value!r}")
    return value


def run_rollback(env: ExecEnv, action: dict[str, Any]) -> dict[str, Any]:
    """Live goes back to the last known-good version; the version it replaces is unhealthy."""
    target = _version(action)
    model = action["model"]
    health = env.store.get_version(model, target).health
    proven = action["params"].get("evidence", {}).get("chosen") == "rollback"
    if health == "unhealthy" or (health != "healthy" and not proven):
        # the guard in decide() already checked; the store may have changed since. A version
        # of unknown health only when the evidence weighed it better on the incident's records
        raise Conflict(f"version {target} of {model!r} is {health}; refusing to roll back to it")
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


def run_fallback(env: ExecEnv, action: dict[str, Any]) -> dict[str, Any]:
    """All traffic goes to the fallback version. The version it replaces keeps answering copies
    of the requests as a shadow (unless a shadow runs already), so the agent sees when it is
    healthy again and can hand the traffic back (``champion_shadow`` in the result)."""
    target = _version(action)
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


def run_disable(env: ExecEnv, action: dict[str, Any]) -> dict[str, Any]:
    """Stop predictions: the gateway answers with the default response, or 503."""

    def mutate(state: DeploymentState) -> DeploymentState:
        return state.model_copy(update={"disabled": True})

    deployment = change_deployment(env, action, "disable", mutate, "disable predictions")
    return {"revision": deployment.revision}


def run_canary(env: ExecEnv, action: dict[str, Any]) -> dict[str, Any]:
    version = _version(action, "version")
    weight = float(action["params"].get("weight", env.policy.retrain.canary_weight))
    if not 0.0 < weight < 1.0:
        raise InvalidInput(f"canary weight must be between 0 and 1, got {weight}")

    def mutate(state: DeploymentState) -> DeploymentState:
        return state.model_copy(update={"canary_version": version, "canary_weight": weight})

    deployment = change_deployment(
        env, action, "canary", mutate, f"canary version {version} at {weight:.0%}"
    )
    return {"version": version, "weight": weight, "revision": deployment.revision}


def run_shadow(env: ExecEnv, action: dict[str, Any]) -> dict[str, Any]:
    version = _version(action, "version")

    def mutate(state: DeploymentState) -> DeploymentState:
        return state.model_copy(update={"shadow_version": version})

    deployment = change_deployment(env, action, "shadow", mutate, f"shadow version {version}")
    return {"version": version, "revision": deployment.revision}


def promoted(state: DeploymentState, version: int) -> DeploymentState:
    """``state`` with ``version`` live, no longer also canary or shadow."""
    update: dict[str, Any] = {"live_version": version}
    if state.canary_version == version:
        update |= {"canary_version": None, "canary_weight": 0.0}
    if state.shadow_version == version:
        update["shadow_version"] = None
    return state.model_copy(update=update)


def run_promote(env: ExecEnv, action: dict[str, Any]) -> dict[str, Any]:
    """Make a version live; requires the evidence that it beat the champion."""
    version = _version(action, "version")
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


def run_repair(env: ExecEnv, action: dict[str, Any]) -> dict[str, Any]:
    """The gateway mends the named features of every request (``domain.FeatureRepair``) before
    the live version answers; undone like any deployment change."""
    raw = action["params"].get("input_repair")
    if not isinstance(raw, dict) or not raw:
        raise InvalidInput("repair needs a non-empty 'input_repair' parameter")
    plan = {name: FeatureRepair.model_validate(rule) for name, rule in raw.items()}
    what = ", ".join(sorted(plan))

    def mutate(state: DeploymentState) -> DeploymentState:
        return state.model_copy(update={"input_repair": {**state.input_repair, **plan}})

    deployment = change_deployment(env, action, "repair", mutate, f"repair inputs: {what}")
    return {"features": sorted(plan), "revision": deployment.revision}
