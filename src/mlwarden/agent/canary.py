"""Canary judgement: is a retrained candidate, serving a share of real traffic, fit to go live?

A retrain validates its candidate on held-out recent records, then stages it as a canary (a
``canary_weight`` share of live traffic) or a shadow (a copy of every request, never answered).
The promotion waits for evidence from production: the candidate's own records, compared with the
champion's records of the same period.

* **errors**: with at least ``MIN_RECORDS`` records of its own, the candidate must not fail more
  often than the champion (``ERROR_MARGIN`` points of slack).
* **performance** (canary only; shadow answers have no labels of their own): once both sides
  have ``retrain.canary_min_labels`` labelled records, the candidate's accuracy (classification)
  or mean absolute error (regression) must be within ``retrain.canary_tolerance`` of the
  champion's, or better.
* a shadow that ran ``retrain.canary_min_labels`` requests without failing more than the
  champion is promoted on the strength of its held-out validation.

Anything short of that evidence is ``wait``; the agent gives up (and removes the candidate)
after ``verify.max_wait_windows`` windows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np

from mlwarden.agent.executors.retrain import score_predictions
from mlwarden.agent.policy import ModelPolicy
from mlwarden.domain import Task
from mlwarden.store.repository import Store

# fewer records than this say nothing about a candidate's error rate
MIN_RECORDS = 50
# how many points more often the candidate may fail than the champion
ERROR_MARGIN = 0.01
# records read per side, newest first: enough for the comparison, bounded in memory
READ_LIMIT = 20_000

Decision = Literal["promote", "reject", "wait"]


@dataclass
class CanaryVerdict:
    decision: Decision
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return f"canary {self.decision}: " + "; ".join(self.reasons)


@dataclass
class _Side:
    records: int
    errors: int
    labelled: int
    metric: float | None


def _side(rows: list[dict[str, Any]], task: Task, served_by: set[str]) -> _Side:
    rows = [r for r in rows if r["served_by"] in served_by]
    errors = sum(1 for r in rows if r["error"])
    scored = [r for r in rows if not r["error"] and r["label"] is not None]
    metric = None
    if scored:
        truth = np.array([r["label"] for r in scored], dtype=object)
        predicted = np.array([r["prediction"] for r in scored], dtype=object)
        # scored as the retrain scored the candidate on held-out records
        _, metric = score_predictions(task, truth, predicted)
    return _Side(len(rows), errors, len(scored), metric)


def judge_canary(
    store: Store,
    model: str,
    candidate: int,
    champion: int,
    rollout: str,
    policy: ModelPolicy,
) -> CanaryVerdict:
    """Compare the candidate's production records with the champion's over the same period."""
    task = store.get_model(model).task
    mine = store.fetch_records(model, version=candidate, newest_first=True, limit=READ_LIMIT)
    cand = _side(mine, task, {"canary", "shadow"})
    # the champion's records since the candidate's first one: the same traffic, the same labels
    since: datetime | None = min((r["timestamp"] for r in mine), default=None)
    theirs = (
        []
        if since is None
        else store.fetch_records(
            model, version=champion, since=since, newest_first=True, limit=READ_LIMIT
        )
    )
    champ = _side(theirs, task, {"live"})
    metric_name = "accuracy" if task is Task.CLASSIFICATION else "neg_mae"  # higher is better
    figures = {
        "rollout": rollout,
        "metric": metric_name,
        "candidate": asdict(cand),
        "champion": asdict(champ),
    }
    if cand.records < MIN_RECORDS or champ.records < MIN_RECORDS:
        return CanaryVerdict(
            "wait",
            [f"{cand.records} candidate and {champ.records} champion records so far"],
            figures,
        )
    cand_errors, champ_errors = cand.errors / cand.records, champ.errors / champ.records
    if cand_errors > champ_errors + ERROR_MARGIN:
        return CanaryVerdict(
            "reject",
            [f"the candidate failed {cand_errors:.1%} of requests, the champion "
             f"{champ_errors:.1%}"],
            figures,
        )
    settings = policy.retrain
    if rollout == "shadow":
        if cand.records < settings.canary_min_labels:
            return CanaryVerdict(
                "wait", [f"{cand.records} of {settings.canary_min_labels} shadow requests"], figures
            )
        return CanaryVerdict(
            "promote",
            [f"{cand.records} shadow requests, errors {cand_errors:.1%} vs {champ_errors:.1%}"],
            figures,
        )
    needed = settings.canary_min_labels
    if cand.labelled < needed or champ.labelled < needed or None in (cand.metric, champ.metric):
        return CanaryVerdict(
            "wait",
            [f"{cand.labelled} candidate and {champ.labelled} champion labels of {needed} needed"],
            figures,
        )
    assert cand.metric is not None and champ.metric is not None
    tolerance = settings.canary_tolerance
    # accuracy: points; an error: relative to its size, when that is above 1
    scale = 1.0 if task is Task.CLASSIFICATION else max(1.0, abs(champ.metric))
    worse = cand.metric < champ.metric - tolerance * scale
    compared = (
        f"{metric_name} {cand.metric:.4g} on {cand.labelled} canary labels vs "
        f"{champ.metric:.4g} on {champ.labelled} champion labels"
    )
    if worse:
        return CanaryVerdict("reject", [f"{compared}: worse than the tolerance allows"], figures)
    return CanaryVerdict("promote", [compared], figures)


__all__ = ["CanaryVerdict", "judge_canary"]
