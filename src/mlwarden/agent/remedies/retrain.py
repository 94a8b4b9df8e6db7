"""The ``retrain`` action: candidate from the champion's recipe, validated, rolled out, promoted.

Steps (each recorded as progress in the journal, each safe to repeat after a crash):

1. **train**: clone the live version's estimator (``sklearn.base.clone``: same pipeline and
   hyper-parameters) and fit it on recent labelled records, plus the reference sample when
   the policy says so. The newest ``holdout_fraction`` of the labelled records is held out.
2. **validate**: candidate and champion are scored on the held-out recent records; the guard
   ``candidate_better`` refuses a candidate that is not better. A refused candidate is
   registered nowhere and the deployment does not change. A validated recipe is fitted again
   on every labelled record, the held-out newest ones included: on a drifting stream they are
   the most like the traffic to come, and the canary judges the refitted candidate.
3. **register** the candidate as a new version (found again by its ``[action N]`` tag).
4. **roll out** as canary (or shadow) and stop there: the result says ``watching``, and the
   agent promotes the candidate (a separate ``promote`` action) only when its own production
   records hold up against the champion's (``agent.canary``). With ``rollout: direct`` the
   candidate is promoted at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from mlwarden.agent.guards import candidate_better
from mlwarden.agent.journal import marker
from mlwarden.agent.policy import RetrainSettings
from mlwarden.agent.remedies.base import (
    ExecEnv,
    Remedy,
    VerifyTarget,
    change_deployment,
    crashpoint,
)
from mlwarden.agent.remedies.promote import promoted
from mlwarden.agent.remedies.registry import register
from mlwarden.domain import ActionKind, DeploymentState, Task
from mlwarden.errors import Conflict, InvalidInput
from mlwarden.registry.registry import Registry
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.journal import ActionRow
from mlwarden.store.repository import Store


def load_estimator(blob: bytes) -> Any:
    """A stored skops artifact as an estimator (the registry's safe loader)."""
    from mlwarden.registry.artifacts import load_model

    return load_model(blob)


def dump_estimator(estimator: Any) -> bytes:
    from mlwarden.registry.artifacts import dump_model

    return dump_model(estimator)


def score_predictions(task: Task, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[str, float]:
    """``(metric, value)``, higher is better: accuracy, or the negated mean absolute error."""
    if task is Task.CLASSIFICATION:
        return "accuracy", float(np.mean(y_true.astype(str) == y_pred.astype(str)))
    return "neg_mae", -float(np.mean(np.abs(y_true.astype(float) - y_pred.astype(float))))


def _labelled(
    store: Store,
    model: str,
    limit: int,
    since_window: int | None = None,
    until: tuple[datetime, str] | None = None,
) -> pd.DataFrame:
    """The newest ``limit`` usable labelled records, oldest first; with ``since_window``, only
    those that arrived after that stored window (the change point); with ``until`` (a window's
    end key), only those that arrived up to it."""
    names = store.get_model(model).feature_names
    after = None
    if since_window is not None:
        after = AgentRepo(store).window_end(model, since_window)
        if after is None:
            raise Conflict(f"window {since_window} of {model!r} has no stored end to learn after")
    rows = store.records_by_arrival(
        model, after=after, until=until, newest_first=True, limit=limit * 3
    )
    rows = [r for r in rows if r["label"] is not None and not r["error"]][:limit]
    rows.reverse()  # oldest first: the newest part is held out
    frame = pd.DataFrame([r["features"] for r in rows], columns=names)
    frame["__label__"] = [r["label"] for r in rows]
    # rows with missing inputs would teach the candidate nothing good; quality is guarded earlier
    return frame.dropna()


@dataclass
class TrainingSet:
    """What a retrain learns from and validates on: the recipe's rows, split in time."""

    x_train: pd.DataFrame
    y_train: np.ndarray
    held: pd.DataFrame  # the newest labelled records, held out (``__label__`` column)
    reference_rows: int  # how many of the training rows are the reference sample
    labelled: int  # usable labelled records read


def training_set(
    store: Store,
    model: str,
    champion_version: int,
    settings: RetrainSettings,
    *,
    since_window: int | None = None,
    until: tuple[datetime, str] | None = None,
) -> TrainingSet:
    """The rows a retrain of ``model`` learns from: the newest ``recent_records`` labelled
    records (after ``since_window``, up to ``until``) with the newest ``holdout_fraction``
    held out, and the champion's reference sample in front when the policy says so."""
    spec = store.get_model(model)
    data = _labelled(store, model, settings.recent_records, since_window, until)
    cut = int(len(data) * (1 - settings.holdout_fraction))
    train, held = data.iloc[:cut], data.iloc[cut:]
    x_train, y_train = train[spec.feature_names], train["__label__"].to_numpy()
    reference_rows = 0
    # after a known change point the reference teaches the relation that no longer holds
    if settings.include_reference and since_window is None:
        sample = store.reference_sample(model, champion_version) or []
        target = spec.target or "target"
        ref = pd.DataFrame([r for r in sample if r.get(target) is not None])
        if len(ref) and set(spec.feature_names) <= set(ref.columns):
            # an input the model takes but does not use (monitored: false) may be missing
            used = [f.name for f in spec.features if f.monitored]
            ref = ref.dropna(subset=[*used, target])
            x_train = pd.concat([ref[spec.feature_names], x_train], ignore_index=True)
            y_train = np.concatenate([ref[target].to_numpy(), y_train])
            reference_rows = len(ref)
    return TrainingSet(x_train, y_train, held, reference_rows, len(data))


def fit_like(champion: Any, x: pd.DataFrame, y: np.ndarray, task: Task | None) -> Any:
    """The champion's recipe (same pipeline and hyper-parameters) fitted on ``x``, ``y``."""
    from sklearn.base import clone

    if task is Task.CLASSIFICATION:
        # labels arrive as JSON; train on the champion's own class type
        y = np.asarray(y).astype(champion.classes_.dtype)
    return clone(champion).fit(x, y)


@dataclass
class Validation:
    """A candidate fitted on a training set, and both versions scored on its held-out rows."""

    candidate: Any
    y_train: np.ndarray  # the training labels, in the champion's class type
    metric: str
    champion_score: float
    candidate_score: float
    refusal: str | None  # why the candidate is not better (None: it is)


def validate(
    champion: Any, data: TrainingSet, task: Task | None, settings: RetrainSettings
) -> Validation:
    """Fit the champion's recipe on ``data``'s training rows and score both on its held-out
    newest rows; ``refusal`` says why the candidate is not better by ``min_improvement``."""
    candidate = fit_like(champion, data.x_train, data.y_train, task)
    y_train = np.asarray(data.y_train)
    if task is Task.CLASSIFICATION:
        y_train = y_train.astype(champion.classes_.dtype)
    names = list(data.x_train.columns)
    x_held, y_held = data.held[names], data.held["__label__"].to_numpy()
    task = task or Task.CLASSIFICATION
    metric, champion_score = score_predictions(task, y_held, champion.predict(x_held))
    _, candidate_score = score_predictions(task, y_held, candidate.predict(x_held))
    refusal = candidate_better(candidate_score, champion_score, settings.min_improvement, metric)
    return Validation(candidate, y_train, metric, champion_score, candidate_score, refusal)


def _candidate_version(env: ExecEnv, model: str, action_id: int) -> int | None:
    tag = marker(action_id)
    for version in env.store.list_versions(model):
        if version.description.startswith(tag):
            return version.number
    return None


@register
class Retrain(Remedy):
    """Train a candidate from the champion's recipe, validate it, stage it (the steps above)."""

    kind = ActionKind.RETRAIN
    phrase = "retrain the model on recent labelled data"
    verifies = VerifyTarget.BASELINE

    def execute(self, env: ExecEnv, action: ActionRow) -> dict[str, Any]:
        model = action["model"]
        settings = env.policy.retrain
        spec = env.store.get_model(model)
        deployment = env.store.get_deployment(model)
        if deployment is None or deployment.live_version is None:
            raise InvalidInput(f"model {model!r} has no live version to retrain from")
        champion_version = action["result"].get("champion_version") or deployment.live_version
        candidate_number = _candidate_version(env, model, action["id"])
        result: dict[str, Any] = dict(action["result"])
        if candidate_number is None:
            since = action["params"].get("since_window")
            data = training_set(env.store, model, champion_version, settings, since_window=since)
            if data.labelled < settings.min_labels:
                raise Conflict(
                    f"only {data.labelled} usable labelled records, {settings.min_labels} needed "
                    "to retrain"
                )
            env.journal.progress(action["id"], step="training", train_rows=len(data.x_train))
            champion = load_estimator(env.store.load_artifact(model, champion_version))
            checked = validate(champion, data, spec.task, settings)
            candidate, held = checked.candidate, data.held
            x_train, y_train = data.x_train, checked.y_train
            env.journal.progress(action["id"], step="validating", holdout_rows=len(held))
            result |= {
                "champion_version": champion_version,
                "metric": checked.metric,
                "champion_score": checked.champion_score,
                "candidate_score": checked.candidate_score,
                "train_rows": len(x_train),
                "reference_rows": data.reference_rows,
                "trained_after_window": since,
                "holdout_rows": len(held),
            }
            metric, candidate_score, refusal = (
                checked.metric,
                checked.candidate_score,
                checked.refusal,
            )
            if refusal:
                # the action ran, but nothing changed: say so wherever it is shown, not just "done"
                result |= {
                    "promoted": False,
                    "discarded": refusal,
                    "outcome": f"no_better: {refusal}",
                }
                return result
            if len(held):
                # validated: the newest records are the ones most like what comes next, so the
                # candidate that goes out learns from them too (same recipe, every labelled row)
                x_train = pd.concat([x_train, held[spec.feature_names]], ignore_index=True)
                y_train = np.concatenate(
                    [y_train, np.asarray(held["__label__"].to_numpy()).astype(y_train.dtype)]
                )
                env.journal.progress(action["id"], step="refitting", train_rows=len(x_train))
                candidate = fit_like(champion, x_train, y_train, spec.task)
                result["train_rows"] = len(x_train)
            info = Registry(env.store).add_sklearn_version(
                model,
                candidate,
                X_reference=x_train,
                y_reference=y_train,
                metrics={metric: candidate_score, "holdout_rows": len(held)},
                description=f"{marker(action['id'])} retrained from version {champion_version}",
                actor=env.actor,
            )
            candidate_number = info.number
            env.journal.progress(
                action["id"], **result, candidate_version=candidate_number, step="registered"
            )
        result["candidate_version"] = candidate_number
        crashpoint("registered")
        if settings.rollout != "direct":
            step = settings.rollout

            def stage(state: DeploymentState) -> DeploymentState:
                if step == "canary":
                    return state.model_copy(
                        update={
                            "canary_version": candidate_number,
                            "canary_weight": settings.canary_weight,
                        }
                    )
                return state.model_copy(update={"shadow_version": candidate_number})

            change_deployment(
                env, action, step, stage, f"{step} candidate version {candidate_number}"
            )
            crashpoint("staged")
            # promotion waits for the candidate's own production records (agent.canary)
            result |= {"promoted": None, "watching": step}
            return result

        def promote(state: DeploymentState) -> DeploymentState:
            return promoted(state, candidate_number)

        deployment = change_deployment(
            env, action, "promote", promote, f"promote retrained version {candidate_number}"
        )
        result |= {"promoted": True, "revision": deployment.revision}
        return result
