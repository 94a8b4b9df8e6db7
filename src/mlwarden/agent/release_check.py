"""A new live version against the one it replaced, on the same records: is the release to blame?

A performance drop found by the monitor needs several windows to persist (the default policy:
3 of 5), and on drifting data a drop is most often the drift's: so a bad release served three
windows before its rollback. But right after a release there is a sharper question than "did
performance drop": *would the version it replaced have answered the same records better?*
The store keeps both versions' model files and the records the new one answered; their labels
arrive. Replaying the previous version on those inputs gives a paired comparison (both versions
on the very same records, so the drift of the data cancels out), which needs no persistence
across windows: its standard error already counts every labelled record since the release.

The comparison is on a proper scoring rule, not only on the served metric: the Brier score
(the squared distance of the class probabilities to the label; the squared error for a
regression). Accuracy sees only the records where the two versions' answers differ, which on
an imbalanced problem are few (a version trained on a broken label join of New York flights
answers "on time" to everything, as the champion does to 99 % of the records: 4 of 800
labelled records differ in the first window); the probabilities differ on every record. A
release is blamed when its mean loss exceeds the previous version's by more than
``SIGMAS`` standard errors of the paired differences and its served metric is no better on
the same records (a version worse in probability but better in answers is left to the
monitor). A release that is as good or better never is: its loss is not significantly higher.

>>> from mlwarden.domain import Task
>>> rows = [{"label": y, "prediction": 0, "scores": {"0": 0.5, "1": 0.5}}
...         for y in [0, 1] * 50]
>>> sharp = [{"0": 0.9, "1": 0.1} if y == 0 else {"0": 0.2, "1": 0.8} for y in [0, 1] * 50]
>>> found = compare(Task.CLASSIFICATION, rows, sharp, [0 if y == 0 else 1 for y in [0, 1] * 50])
>>> found.worse, round(found.loss_new - found.loss_old, 3), found.metric_new, found.metric_old
(True, 0.45, 0.5, 1.0)
>>> compare(Task.CLASSIFICATION, rows, [r["scores"] for r in rows], [0] * 100).worse
False
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import numpy as np

from mlwarden.agent.policy import ModelPolicy
from mlwarden.domain import Deployment, Finding, FindingKind, Task
from mlwarden.errors import MlwardenError
from mlwarden.serving.predictors import LocalPredictor
from mlwarden.stats.performance import canonical_label
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store

__all__ = [
    "SIGMAS",
    "Release",
    "VersusPrevious",
    "check_release",
    "compare",
    "finding",
    "latest_release",
]

# a release is worse when its mean loss is beyond this many standard errors of the paired
# differences (the same bar as a performance drop against the reference: REFERENCE_SIGMAS)
SIGMAS = 3.0
# fewer labelled records than this say nothing about a release
MIN_LABELLED = 100


@dataclass(frozen=True)
class VersusPrevious:
    """The live version and the one before it, on the same labelled records."""

    labelled: int
    loss: str  # "brier", "0-1" (no probabilities on one side) or "squared_error"
    loss_new: float
    loss_old: float
    standard_error: float
    metric: str  # "accuracy" or "rmse"
    metric_new: float
    metric_old: float

    @property
    def z(self) -> float:
        diff = self.loss_new - self.loss_old
        if self.standard_error <= 0:
            return math.inf if diff > 0 else 0.0
        return diff / self.standard_error

    @property
    def metric_no_better(self) -> bool:
        if self.metric == "rmse":
            return self.metric_new >= self.metric_old
        return self.metric_new <= self.metric_old

    @property
    def worse(self) -> bool:
        return self.labelled >= MIN_LABELLED and self.z > SIGMAS and self.metric_no_better


def _probabilities(scores: Any) -> dict[str, float] | None:
    if not isinstance(scores, Mapping) or not scores:
        return None
    try:
        return {str(canonical_label(k)): float(v) for k, v in scores.items()}
    except (TypeError, ValueError):
        return None


def _brier(probabilities: Mapping[str, float], label: str) -> float:
    loss = sum((p - (1.0 if c == label else 0.0)) ** 2 for c, p in probabilities.items())
    return loss if label in probabilities else loss + 1.0


def compare(
    task: Task,
    rows: Sequence[Mapping[str, Any]],
    previous_scores: Sequence[Any],
    previous_answers: Sequence[Any],
) -> VersusPrevious:
    """``rows``: the labelled records the live version answered (``prediction``, ``scores``,
    ``label``); the previous version's scores (class probabilities, or None) and answers to
    the same inputs, in the same order."""
    labels = [r["label"] for r in rows]
    if task is Task.REGRESSION:
        truth = np.array([float(y) for y in labels], dtype=float)
        new = np.array([float(r["prediction"]) for r in rows], dtype=float)
        old = np.array([float(a) for a in previous_answers], dtype=float)
        new_loss, old_loss = (new - truth) ** 2, (old - truth) ** 2
        metric = "rmse"
        metric_new = float(np.sqrt(new_loss.mean())) if len(truth) else 0.0
        metric_old = float(np.sqrt(old_loss.mean())) if len(truth) else 0.0
        kind = "squared_error"
    else:
        truth_labels = [str(canonical_label(y)) for y in labels]
        right_new = np.array(
            [
                canonical_label(r["prediction"]) == y
                for r, y in zip(rows, truth_labels, strict=True)
            ],
            dtype=float,
        )
        right_old = np.array(
            [canonical_label(a) == y for a, y in zip(previous_answers, truth_labels, strict=True)],
            dtype=float,
        )
        metric, metric_new, metric_old = "accuracy", 0.0, 0.0
        if len(truth_labels):
            metric_new, metric_old = float(right_new.mean()), float(right_old.mean())
        new_p = [_probabilities(r.get("scores")) for r in rows]
        old_p = [_probabilities(s) for s in previous_scores]
        if all(p is not None for p in new_p) and all(p is not None for p in old_p):
            kind = "brier"
            new_loss = np.array(
                [_brier(p, y) for p, y in zip(new_p, truth_labels, strict=True) if p is not None]
            )
            old_loss = np.array(
                [_brier(p, y) for p, y in zip(old_p, truth_labels, strict=True) if p is not None]
            )
        else:
            kind, new_loss, old_loss = "0-1", 1.0 - right_new, 1.0 - right_old
    n = len(labels)
    diff = new_loss - old_loss
    se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return VersusPrevious(
        labelled=n,
        loss=kind,
        loss_new=float(new_loss.mean()) if n else 0.0,
        loss_old=float(old_loss.mean()) if n else 0.0,
        standard_error=se,
        metric=metric,
        metric_new=metric_new,
        metric_old=metric_old,
    )


def finding(
    result: VersusPrevious,
    window: int,
    *,
    version: int,
    previous: int,
    revision: int,
    first_window: int,
) -> Finding:
    """The performance finding of a release worse than the version before it."""
    gap = result.metric_old - result.metric_new
    drop = gap if result.metric == "accuracy" else -gap / max(abs(result.metric_old), 1e-12)
    return Finding(
        kind=FindingKind.CONCEPT_DRIFT,
        detector="release.versus_previous",
        statistic=f"{result.loss}_versus_previous",
        score=result.loss_new - result.loss_old,
        threshold=SIGMAS * result.standard_error,
        window=window,
        message=(
            f"version {version} (live since revision {revision}) answers the "
            f"{result.labelled} labelled records since worse than version {previous} would "
            f"have: {result.loss} {result.loss_new:.4f} against {result.loss_old:.4f} "
            f"({result.z:.1f} standard errors), {result.metric} {result.metric_new:.4f} "
            f"against {result.metric_old:.4f}"
        ),
        evidence={
            "versus_previous": {
                "version": version,
                "previous": previous,
                "revision": revision,
                "labelled": result.labelled,
                "loss": result.loss,
                "loss_new": result.loss_new,
                "loss_old": result.loss_old,
                "standard_error": result.standard_error,
                "z": result.z,
                "metric": result.metric,
                "metric_new": result.metric_new,
                "metric_old": result.metric_old,
            },
            "metric": result.metric,
            "change_window": first_window,
            "performance_drop": float(drop),
            "estimated": False,
        },
    )


# the records a release is judged on at most (the newest kept), as the evidence reads
MAX_RECORDS = 20_000


@dataclass(frozen=True)
class Release:
    """The revision that put the live version in place, and the version it replaced."""

    revision: int
    version: int
    previous: int
    at: datetime


def latest_release(history: Sequence[Deployment], agent: str) -> Release | None:
    """The newest revision that changed the live version (``history`` newest first), unless
    the agent made it: its own remedies are judged by their verification and canary."""
    for newer, older in pairwise(history):
        if newer.live_version == older.live_version:
            continue
        if newer.actor == agent or newer.live_version is None or older.live_version is None:
            return None
        return Release(newer.revision, newer.live_version, older.live_version, newer.created_at)
    return None


def check_release(
    store: Store,
    repo: AgentRepo,
    model: str,
    window: int,
    end: tuple[datetime, str],
    policy: ModelPolicy,
    *,
    agent: str,
    now: datetime,
    predictor: Callable[[int], LocalPredictor | None],
) -> Finding | None:
    """The finding of window ``window`` (its last record's arrival key ``end``) when the live
    version, released by someone other than the agent within the policy's deploy window and
    not known healthy, answers the labelled records since its release worse than the version
    it replaced would have (see the module docstring); None otherwise."""
    history = store.deployment_history(model, limit=50)
    release = latest_release(history, agent)
    if release is None or now - release.at > timedelta(minutes=policy.deploy_window_minutes):
        return None
    if store.get_version(model, release.version).health == "healthy":
        return None  # it served clean windows already: a new failure is not its release's
    served = repo.windows_between(model, release.at, window) + 1
    if served > policy.deploy_window_windows + 1:
        return None
    spec = store.get_model(model)
    if spec.task is None:
        return None
    rows = store.records_by_arrival(
        model, after=(release.at, ""), until=end, limit=MAX_RECORDS, newest_first=True
    )
    rows = [
        r
        for r in rows
        # its own answers (not a fallback's, nor a canary's: those name their version)
        if r["version"] == release.version
        and r["served_by"] != "shadow"
        and r["label"] is not None
        and r["prediction"] is not None
        and not r["error"]
    ]
    if len(rows) < MIN_LABELLED:
        return None
    previous = predictor(release.previous)
    if previous is None:
        return None
    try:
        answers = previous.predict([r["features"] for r in rows])
    except MlwardenError:
        return None
    result = compare(
        spec.task, rows, [a.probabilities for a in answers], [a.prediction for a in answers]
    )
    if not result.worse:
        return None
    return finding(
        result,
        window,
        version=release.version,
        previous=release.previous,
        revision=release.revision,
        first_window=window - served + 1,
    )
