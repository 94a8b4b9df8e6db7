"""The registry moves the assistant needs: add a trained version, set a live version, roll back.

Uses ``mlwarden.registry`` (``Registry`` and ``registry.artifacts``) when it is installed in
this tree, else the same moves straight on the ``Store``: a new deployment revision with an
event on the model's timeline and an audit entry, so the history reads the same either way.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import pandas as pd

from mlwarden.domain import Deployment, DeploymentState, ModelSpec
from mlwarden.errors import Conflict, NotFound
from mlwarden.store import Store

_STATE_FIELDS = set(DeploymentState.model_fields)


def _optional(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def dump_artifact(estimator: Any) -> bytes:
    """The skops bytes of ``estimator`` (through the registry's writer when it exists)."""
    dump_model = _optional("mlwarden.registry.artifacts", "dump_model")
    if dump_model is not None:
        return bytes(dump_model(estimator))
    import skops.io as sio

    return bytes(sio.dumps(estimator))


def reference_sample(
    X: pd.DataFrame, y: pd.Series, target: str, size: int, random_state: int = 0
) -> list[dict[str, Any]]:
    """Up to ``size`` training rows (features plus target) as JSON-ready dicts."""
    frame = X.assign(**{target: y.to_numpy()})
    if len(frame) > size:
        frame = frame.sample(n=size, random_state=random_state)
    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{str(k): _native(v) for k, v in row.items()} for row in rows]


def _native(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def ensure_model(store: Store, spec: ModelSpec, actor: str) -> str:
    """Register ``spec``, or update it when the model exists but serves nothing yet.

    Returns "registered", "updated" or "unchanged". A model that is deployed somewhere keeps
    its schema: a new version with other inputs would break the live traffic.
    """
    if spec.name not in store.model_names():
        store.create_model(spec, actor=actor)
        return "registered"
    current = store.get_model(spec.name)
    if current.task != spec.task or current.target != spec.target:
        raise Conflict(
            f"model {spec.name!r} already exists and predicts {current.target!r} "
            f"({current.task.value}); name this one differently ('... as NEW-NAME')",
            model=spec.name,
        )
    if current.feature_names == spec.feature_names:
        return "unchanged"
    deployed = [
        env for env in ("production", "staging") if store.get_deployment(spec.name, env) is not None
    ]
    if deployed:
        raise Conflict(
            f"model {spec.name!r} is deployed ({', '.join(deployed)}) with inputs "
            f"{current.feature_names}; this run uses {spec.feature_names}. Train it under another "
            "name ('... as NEW-NAME') so live traffic keeps working",
            model=spec.name,
        )
    store.update_model(spec, actor=actor)
    return "updated"


def add_trained_version(
    store: Store,
    spec: ModelSpec,
    estimator: Any,
    *,
    reference: list[dict[str, Any]],
    metrics: Mapping[str, float],
    description: str,
    actor: str,
) -> int:
    """Store ``estimator`` as the next version of ``spec.name``; returns its number."""
    info = store.add_version(
        spec.name,
        kind="sklearn",
        artifact=dump_artifact(estimator),
        training_metrics=dict(metrics),
        reference_sample=reference,
        feature_importance=None,
        description=description,
        actor=actor,
    )
    return info.number


def set_live(
    store: Store,
    model: str,
    version: int,
    *,
    environment: str,
    actor: str,
    reason: str,
    kind: str = "deploy",
) -> tuple[Deployment | None, Deployment]:
    """Make ``version`` live in ``environment``, keeping the rest of its routing."""
    before = store.get_deployment(model, environment)
    base = before.model_dump(include=_STATE_FIELDS) if before is not None else {}
    state = DeploymentState.model_validate({**base, "live_version": version})
    after = store.set_deployment(model, state, actor=actor, reason=reason, environment=environment)
    details = {
        "environment": environment,
        "revision": after.revision,
        "reason": reason,
        "from_version": None if before is None else before.live_version,
        "to_version": version,
    }
    store.add_event(model, kind, actor, details)
    store.audit(actor, f"deployment.{kind}", model, details)
    return before, after


def rollback_target(store: Store, model: str, environment: str) -> int:
    """The live version before the current one in ``environment``."""
    history = store.deployment_history(model, environment)
    if not history:
        raise Conflict(
            f"model {model!r} has never been deployed to {environment}; nothing to roll back"
        )
    current = history[0].live_version
    for revision in history[1:]:
        if revision.live_version is not None and revision.live_version != current:
            return revision.live_version
    raise Conflict(
        f"model {model!r} has no earlier live version in {environment} to roll back to "
        f"(live is version {current})"
    )


def newest_version(store: Store, model: str) -> int:
    versions = store.list_versions(model)
    if not versions:
        raise NotFound(f"model {model!r} has no versions yet; train it first")
    return max(v.number for v in versions)
