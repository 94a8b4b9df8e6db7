"""Canary judgement: is a retrained candidate, serving a share of real traffic, fit to go live?

A retrain validates its candidate on held-out recent records, then stages it as a canary (a
``canary_weight`` share of live traffic) or a shadow (a copy of every request, never answered).
The promotion waits for evidence from production: the candidate's own records, compared with the
champion's records of the same period.

* **errors**: with at least ``MIN_RECORDS`` records of its own, the candidate must not fail more
  often than the champion (``ERROR_MARGIN`` points of slack).
* **performance, paired**: every labelled request of the period is scored for both versions,
  the served answer for the version that served it and a replay (the stored features through
  the other version's artifact, as the gateway would run it) for the other. Comparing the two
  on the same requests removes the difference between the rows each side happened to serve
  (time-ordered electricity: 200 canary labels against 201 of the champion's said 0.655 vs
  0.677; the same 1,401 requests said the candidate was 1.8 to 7.9 points better). With
  ``retrain.canary_min_labels`` paired requests, the candidate is rejected when it is worse
  by more than ``retrain.canary_tolerance`` or significantly worse at all (the 95 % interval
  of the paired difference lies below zero), promoted when the interval lies above
  ``retrain.canary_min_gain``, removed when it lies below that gain (it cannot be shown), and
  watched longer otherwise: a new live version is a risk of its own, taken only for a gain
  the data show. Shadows are judged the same way: the live requests carry the labels.
* without artifacts to replay (remote versions) or enough labelled requests yet, the canary's
  own labelled records are compared with the champion's, within ``retrain.canary_tolerance``;
  a shadow that ran ``retrain.canary_min_labels`` requests without failing more than the
  champion is promoted on the strength of its held-out validation.

Anything short of that evidence is ``wait``; the agent gives up (and removes the candidate)
after ``verify.max_wait_windows`` windows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np

from mlwarden.agent.evidence import Answer
from mlwarden.agent.policy import ModelPolicy
from mlwarden.agent.remedies.retrain import score_predictions
from mlwarden.domain import ModelSpec, Task
from mlwarden.errors import MlwardenError
from mlwarden.serving.predictors import LocalPredictor
from mlwarden.store.repository import Store

log = logging.getLogger("mlwarden.agent")

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
    answerer: Callable[[int], Answer | None] | None = None,
) -> CanaryVerdict:
    """Compare the candidate's production records with the champion's over the same period.

    ``answerer(version)`` replays a version on logged inputs (default: its stored artifact,
    loaded here; the agent passes its cache of loaded versions)."""
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
            [
                f"the candidate failed {cand_errors:.1%} of requests, the champion "
                f"{champ_errors:.1%}"
            ],
            figures,
        )
    settings = policy.retrain
    paired = _paired(
        answerer or (lambda version: artifact_answerer(store, model, version)),
        candidate,
        champion,
        [*mine, *theirs],
    )
    if paired is not None and len(paired.truth) >= settings.canary_min_labels:
        return judge_paired(paired, task, metric_name, policy, figures)
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


@dataclass
class Paired:
    """Both versions' answers to the same labelled requests."""

    truth: np.ndarray
    candidate: np.ndarray
    champion: np.ndarray


def artifact_predictor(
    store: Store, model: str, version: int, spec: ModelSpec | None = None
) -> LocalPredictor | None:
    """A version's model, in process, as the gateway runs it; None when it has no artifact to
    run here (a remote version is not called off the serving path)."""
    try:
        return LocalPredictor.from_artifact(
            store.load_artifact(model, version), spec or store.get_model(model)
        )
    except MlwardenError as exc:
        log.info("version %s of %s cannot be scored offline: %s", version, model, exc)
        return None


def answers_of(predictor: LocalPredictor) -> Answer:
    """``predictor``'s answers to logged inputs."""
    return lambda inputs: [p.prediction for p in predictor.predict(inputs)]


def artifact_answerer(
    store: Store, model: str, version: int, spec: ModelSpec | None = None
) -> Answer | None:
    """A version's answers to logged inputs (:func:`artifact_predictor`)."""
    predictor = artifact_predictor(store, model, version, spec)
    return None if predictor is None else answers_of(predictor)


def _paired(
    answerer: Callable[[int], Answer | None],
    candidate: int,
    champion: int,
    rows: list[dict[str, Any]],
) -> Paired | None:
    """Served answers, and replayed ones for the version that did not serve the request."""
    scored = [
        r for r in rows if r["label"] is not None and not r["error"] and r["prediction"] is not None
    ]
    by_candidate = [r["served_by"] in {"canary", "shadow"} for r in scored]
    replay = {
        version: answerer(version)
        for version, needed in ((candidate, not all(by_candidate)), (champion, any(by_candidate)))
        if needed
    }
    if any(predictor is None for predictor in replay.values()):
        return None

    def answers(version: int, served: list[bool]) -> np.ndarray:
        out = np.array([r["prediction"] for r in scored], dtype=object)
        missing = [i for i, own in enumerate(served) if not own]
        if missing:
            answer = replay[version]
            assert answer is not None
            try:
                again = answer([scored[i]["features"] for i in missing])
            except MlwardenError:
                return np.array([], dtype=object)
            for i, value in zip(missing, again, strict=True):
                out[i] = value
        return out

    cand = answers(candidate, by_candidate)
    champ = answers(champion, [not own for own in by_candidate])
    if len(cand) != len(scored) or len(champ) != len(scored):
        return None  # a replay failed: judge on the served records alone
    truth = np.array([r["label"] for r in scored], dtype=object)
    return Paired(truth, cand, champ)


def judge_paired(
    paired: Paired,
    task: Task,
    metric_name: str,
    policy: ModelPolicy,
    figures: dict[str, Any],
) -> CanaryVerdict:
    settings = policy.retrain
    n = len(paired.truth)
    _, cand_metric = score_predictions(task, paired.truth, paired.candidate)
    _, champ_metric = score_predictions(task, paired.truth, paired.champion)
    if task is Task.CLASSIFICATION:
        truth = paired.truth.astype(str)
        # +1 where only the candidate is right, -1 where only the champion is
        gain = (paired.candidate.astype(str) == truth).astype(float) - (
            paired.champion.astype(str) == truth
        ).astype(float)
        scale = 1.0
    else:
        y = paired.truth.astype(float)
        champion_error = np.abs(y - paired.champion.astype(float))
        gain = champion_error - np.abs(y - paired.candidate.astype(float))
        scale = max(1.0, abs(champ_metric))
    difference = float(gain.mean())
    half_width = 1.96 * float(gain.std(ddof=1)) / np.sqrt(n) if n > 1 else float("inf")
    figures["paired"] = {
        "requests": n,
        "candidate": cand_metric,
        "champion": champ_metric,
        "difference": difference,
        "interval": [difference - half_width, difference + half_width],
        "candidate_better": int((gain > 0).sum()),
        "champion_better": int((gain < 0).sum()),
    }
    compared = (
        f"{metric_name} {cand_metric:.4g} vs the champion's {champ_metric:.4g} on the same {n} "
        f"labelled requests (difference {difference:+.4g}, 95 % interval "
        f"{difference - half_width:+.4g} to {difference + half_width:+.4g})"
    )
    if difference < -settings.canary_tolerance * scale:
        return CanaryVerdict("reject", [f"{compared}: worse than the tolerance allows"], figures)
    if difference + half_width < 0:
        return CanaryVerdict("reject", [f"{compared}: significantly worse"], figures)
    wanted = settings.canary_min_gain * scale
    if wanted and difference + half_width < wanted:
        # the gain the promotion asks for lies outside the interval already: more requests
        # would only keep the canary serving for nothing
        return CanaryVerdict(
            "reject", [f"{compared}: cannot be shown better by {wanted:.4g}"], figures
        )
    if difference - half_width > wanted:
        return CanaryVerdict(
            "promote",
            [
                f"{compared}: better by more than {wanted:.4g}"
                if wanted
                else f"{compared}: significantly better"
            ],
            figures,
        )
    return CanaryVerdict(
        "wait", [f"{compared}: not yet shown better by more than {wanted:.4g}"], figures
    )


__all__ = [
    "CanaryVerdict",
    "Paired",
    "answers_of",
    "artifact_answerer",
    "artifact_predictor",
    "judge_canary",
    "judge_paired",
]
