"""The policy the agent runs with, and its change history in the audit log.

The policy is a file (``MLWARDEN_AGENT_POLICY``) merged over the bundled ``default.yaml``, read
when the agent starts. Each start whose effective policy differs from the last one recorded
appends a ``policy.loaded`` audit entry holding the effective policy and its hash, so the
history says when the policy the agent acted on changed, and what changed, even though the file
itself lives outside mlwarden.
"""

from __future__ import annotations

import hashlib
from typing import Any

from mlwarden.agent.policy import Policy
from mlwarden.store.base import canonical_json
from mlwarden.store.repository import Store

__all__ = ["POLICY_LOADED", "effective_policy", "policy_history", "record_policy"]

POLICY_LOADED = "policy.loaded"


def effective_policy(policy: Policy) -> dict[str, Any]:
    """What the agent acts on: the merged defaults, and each model that has its own overrides
    merged over them."""
    models = sorted((policy.raw.get("models") or {}).keys())
    return {
        "defaults": policy.defaults.model_dump(mode="json"),
        "models": {name: policy.for_model(name).model_dump(mode="json") for name in models},
    }


def _digest(effective: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(effective).encode()).hexdigest()


def record_policy(store: Store, policy: Policy, actor: str = "agent") -> dict[str, Any] | None:
    """Append a ``policy.loaded`` audit entry when ``policy`` differs from the last recorded
    one; the entry, or None when nothing changed."""
    effective = effective_policy(policy)
    digest = _digest(effective)
    last = store.audit_entries(limit=1, action=POLICY_LOADED)
    if last and last[0]["details"].get("sha256") == digest:
        return None
    return store.audit(
        actor,
        POLICY_LOADED,
        policy.source,
        {"source": policy.source, "sha256": digest, "policy": effective},
    )


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def policy_history(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """The recorded policies, newest first, each with ``changes``: (setting, before, after) for
    every setting that differs from the policy recorded before it (None for the first)."""
    entries = store.audit_entries(limit=limit + 1, action=POLICY_LOADED)
    out = []
    for k, entry in enumerate(entries[:limit]):
        details = entry["details"]
        changes = None
        if k + 1 < len(entries):
            before = _flat(entries[k + 1]["details"].get("policy") or {})
            after = _flat(details.get("policy") or {})
            changes = [
                (key, before.get(key), after.get(key))
                for key in sorted(before.keys() | after.keys())
                if before.get(key) != after.get(key)
            ]
        out.append(
            {
                "ts": entry["ts"],
                "actor": entry["actor"],
                "source": details.get("source"),
                "sha256": details.get("sha256"),
                "changes": changes,
            }
        )
    return out
