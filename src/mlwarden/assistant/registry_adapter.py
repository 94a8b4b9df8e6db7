"""What the assistant needs around :class:`~mlwarden.registry.registry.Registry`: deciding
whether a trained model can be (re)registered under its name, and its newest version.

Versions, deploys and rollbacks themselves go through the Registry (audited, on the timeline).
"""

from __future__ import annotations

from mlwarden.domain import ModelSpec
from mlwarden.errors import Conflict, NotFound
from mlwarden.registry.registry import Registry


def ensure_model(registry: Registry, spec: ModelSpec, actor: str) -> str:
    """Register ``spec``, or update it when the model exists but serves nothing yet.

    Returns "registered", "updated" or "unchanged". A model that is deployed somewhere keeps
    its schema: a new version with other inputs would break the live traffic.
    """
    store = registry.store
    if spec.name not in store.model_names():
        registry.register_model(spec, actor=actor)
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


def newest_version(registry: Registry, model: str) -> int:
    versions = registry.store.list_versions(model)
    if not versions:
        raise NotFound(f"model {model!r} has no versions yet; train it first")
    return max(v.number for v in versions)
