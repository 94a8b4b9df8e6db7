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

from typing import Any

import numpy as np
import pandas as pd

from mlwarden.agent.executors.base import ExecEnv, change_deployment, crashpoint
from mlwarden.agent.executors.deploy import promoted
from mlwarden.agent.guards import candidate_better
from mlwarden.agent.journal import marker
from mlwarden.agent.repo import AgentRepo
from mlwarden.domain import DeploymentState, Task
from mlwarden.errors import Conflict, InvalidInput
from mlwarden.registry.registry import Registry


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
    env: ExecEnv, model: str, limit: int, since_window: int | None = None
) -> pd.DataFrame:
    """The newest ``limit`` usable labelled records, oldest first; with ``since_window``, only
    those that arrived after that stored window (the change point)."""
    names = env.store.get_model(model).feature_names
    if since_window is not None:
        start = AgentRepo(env.store).window_end(model, since_window)
        if start is None:
            raise Conflict(f"window {since_window} of {model!r} has no stored end to learn after")
        rows = env.store.records_by_arrival(model, after=start, newest_first=True, limit=limit * 3)
    else:
        rows = env.store.fetch_records(model, newest_first=True, limit=limit * 3)
    rows = [r for r in rows if r["label"] is not None and not r["error"]][:limit]
    rows.reverse()  # oldest first: the newest part is held out
    frame = pd.DataFrame([r["features"] for r in rows], columns=names)
    frame["__label__"] = [r["label"] for r in rows]
    # rows with missing inputs would teach the candidate nothing good; quality is guarded earlier
    return frame.dropna()


def _candidate_version(env: ExecEnv, model: str, action_id: int) -> int | None:
    tag = marker(action_id)
    for version in env.store.list_versions(model):
        if version.description.startswith(tag):
            return version.number
    return None


def run_retrain(env: ExecEnv, action: dict[str, Any]) -> dict[str, Any]:
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
        data = _labelled(env, model, settings.recent_records, since)
        if len(data) < settings.min_labels:
            raise Conflict(
                f"only {len(data)} usable labelled records, {settings.min_labels} needed to retrain"
            )
        cut = int(len(data) * (1 - settings.holdout_fraction))
        train, held = data.iloc[:cut], data.iloc[cut:]
        x_train, y_train = train[spec.feature_names], train["__label__"].to_numpy()
        reference_rows = 0
        # after a known change point the reference teaches the relation that no longer holds
        if settings.include_reference and since is None:
            sample = env.store.reference_sample(model, champion_version) or []
            target = spec.target or "target"
            ref = pd.DataFrame([r for r in sample if r.get(target) is not None])
            if len(ref) and set(spec.feature_names) <= set(ref.columns):
                ref = ref.dropna(subset=[*spec.feature_names, target])
                x_train = pd.concat([ref[spec.feature_names], x_train], ignore_index=True)
                y_train = np.concatenate([ref[target].to_numpy(), y_train])
                reference_rows = len(ref)
        from sklearn.base import clone

        env.journal.progress(action["id"], step="training", train_rows=len(x_train))
        champion = load_estimator(env.store.load_artifact(model, champion_version))
        if spec.task is Task.CLASSIFICATION:
            # labels arrive as JSON; train on the champion's own class type
            y_train = np.asarray(y_train).astype(champion.classes_.dtype)
        candidate = clone(champion).fit(x_train, y_train)
        x_held, y_held = held[spec.feature_names], held["__label__"].to_numpy()
        env.journal.progress(action["id"], step="validating", holdout_rows=len(held))
        metric, champion_score = score_predictions(spec.task, y_held, champion.predict(x_held))
        _, candidate_score = score_predictions(spec.task, y_held, candidate.predict(x_held))
        result |= {
            "champion_version": champion_version,
            "metric": metric,
            "champion_score": champion_score,
            "candidate_score": candidate_score,
            "train_rows": len(x_train),
            "reference_rows": reference_rows,
            "trained_after_window": since,
            "holdout_rows": len(held),
        }
        refusal = candidate_better(
            candidate_score, champion_score, settings.min_improvement, metric
        )
        if refusal:
            # the action ran, but nothing changed: say so wherever it is shown, not just "done"
            result |= {"promoted": False, "discarded": refusal, "outcome": f"no_better: {refusal}"}
            return result
        if len(held):
            # validated: the newest records are the ones most like what comes next, so the
            # candidate that goes out learns from them too (same recipe, every labelled row)
            x_train = pd.concat([x_train, held[spec.feature_names]], ignore_index=True)
            y_train = np.concatenate(
                [y_train, np.asarray(held["__label__"].to_numpy()).astype(y_train.dtype)]
            )
            env.journal.progress(action["id"], step="refitting", train_rows=len(x_train))
            candidate = clone(champion).fit(x_train, y_train)
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

        change_deployment(env, action, step, stage, f"{step} candidate version {candidate_number}")
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
