"""Failure memory: past incidents with their diagnosis, action and verification outcome.

When a new incident resembles an old one (same diagnosis, overlapping finding kinds and
features, Jaccard similarity of at least ``min_similarity``), the decision says so and prefers
the action that worked then.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from mlwarden.domain import ActionKind
from mlwarden.store import agent_tables as at
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
    i, a = at.incidents, at.actions
    with repo.engine.connect() as conn:
        rows = conn.execute(
            select(i.c.id, i.c.state, i.c.kinds, i.c.features)
            .where(
                i.c.model_id == repo.store.model_id(model),
                i.c.diagnosis == diagnosis,
                i.c.state.in_(("resolved", "escalated")),
            )
            .order_by(i.c.id.desc())
            .limit(50)
        ).all()
        best: Recollection | None = None
        for row in rows:
            if row.id == exclude:
                continue
            similarity = 0.5 * _jaccard(set(kinds), set(row.kinds or [])) + 0.5 * _jaccard(
                set(features), set(row.features or [])
            )
            if similarity < min_similarity or (best and similarity <= best.similarity):
                continue
            kind = conn.execute(
                select(a.c.kind)
                .where(a.c.incident_id == row.id, a.c.kind != ActionKind.ALERT.value)
                .order_by(a.c.id)
                .limit(1)
            ).scalar()
            action = None if kind is None else ActionKind(kind)
            worked = row.state == "resolved"
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
