"""Failure memory: past incidents with their diagnosis, action and verification outcome.

When a new incident resembles an old one (same diagnosis, overlapping finding kinds and
features, Jaccard similarity of at least ``min_similarity``), the decision says so and prefers
the action that worked then.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlwarden.domain import ActionKind, IncidentState
from mlwarden.store.incidents import AgentRepo


@dataclass(frozen=True)
class Recollection:
    incident_id: int
    similarity: float
    action: ActionKind | None
    worked: bool
    hint: str


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def recall(
    repo: AgentRepo,
    model: str,
    diagnosis: str,
    kinds: list[str],
    features: list[str],
    *,
    exclude: int | None = None,
    min_similarity: float = 0.5,
) -> Recollection | None:
    """The most similar closed incident of ``model`` with the same diagnosis, if any."""
    best: Recollection | None = None
    for row in repo.closed_with_diagnosis(model, diagnosis):
        if row.id == exclude:
            continue
        similarity = 0.5 * _jaccard(set(kinds), set(row.kinds)) + 0.5 * _jaccard(
            set(features), set(row.features)
        )
        if similarity < min_similarity or (best and similarity <= best.similarity):
            continue
        kind = repo.first_action_kind(row.id, besides=ActionKind.ALERT.value)
        action = None if kind is None else ActionKind(kind)
        worked = row.state is IncidentState.RESOLVED
        verb = "worked" if worked else "did not work"
        what = action.value if action else "alerting only"
        best = Recollection(
            row.id,
            similarity,
            action,
            worked,
            f"resembles incident {row.id} ({similarity:.0%} similar) where {what} {verb}",
        )
    return best


__all__ = ["Recollection", "recall"]
