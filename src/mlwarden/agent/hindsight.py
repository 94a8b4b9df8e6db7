"""Would a retrain have helped? The retrain a drop calls for, judged in hindsight first.

A performance drop on moving inputs is answered by a retrain in the decision table, and a
retrain validates its candidate on the newest held-out records before it goes out. On a stream
that drifts all the time that validation misleads: the newest records are like the next few
hundred, not like the weeks the candidate would serve. On time-ordered electricity
(``bench/bench_retrain_hindsight.py``, docs/benchmarks.md "A retrain judged in hindsight"),
candidates fitted at windows 3-9 beat the champion by 1 to 9 points on their own held-out
newest records, and served 1.5 to 3.2 points worse than it from two windows after their fit;
leaving a gap of one or two windows before the held-out records did not tell them apart.

So before a retrain is asked for, the agent replays the question on data it already has: the
candidate that a retrain would have produced ``retrain.hindsight_windows`` windows ago (or when
the drop began, if later), the same recipe fitted on the labelled records that had arrived by
then with the reference in front, is scored against the champion on the labelled records of the
windows since, the same requests for both, and judged as a canary is
(``agent.canary.judge_paired``): only a gain whose 95 % interval lies above
``retrain.canary_min_gain``, and a candidate that passes the retrain's own validation now,
justify the retrain. This is prequential (test-then-train) evaluation of the retraining policy
itself (A. P. Dawid, "Statistical theory: the prequential approach", JRSS A 147, 1984; J. Gama
et al., "On evaluating stream learning algorithms", Machine Learning 90, 2013): the candidate
is only ever scored on records that arrived after everything it learned from.

A concept drift is judged the same way when it has no change point after the first window:
its retrain then learns the reference and the recent records, as a drop on moving inputs does.
On the New York flights in time order the spring's drop was dated to window 0 and a retrain
was asked at window 4 with no evidence; replayed from window 2 it served +0.007 better on the
2,801 labelled requests since, not the 0.02 required, and is no longer asked there.

A concept drift with a change point learns the records after it alone (no reference in front),
which a retrain before it could not have. By default (``retrain.concept_hindsight: ask``) that
retrain is asked at once. With ``lasting`` it is replayed first: the recipe fitted on the first
whole window after the change, scored against the champion on every labelled window since
(a changed relation is a lasting one), and not before such a window exists. Early on the two
cannot be told apart (``bench/bench_concept_hindsight.py``, docs/benchmarks.md "A
concept-drift retrain judged on evidence"). On the flights the candidate of the first window
after the summer's change point served the windows since +0.013 to +0.026 better, never shown
0.02 better, and a retrain asked then would have served between +0.002 and -0.050 over the
next 18 windows: ``lasting`` spares ``control_flights`` its retrain. But on the electricity
whose price relation flips at window 5, inside a concept-drift incident that natural drift had
opened at window 1, the candidate of window 1 served worse since (-0.004), so ``lasting``
never asks the retrain that, asked at once, served +0.077 over the fault periods. Replays over
the last one to three windows (candidates fitted on what came before) ask both streams'
retrains alike (0.04 to 0.08 better on both), so ``ask`` stays the default. What spares the
flights their retrain is not the replay but the champion's own range (``agent.own_range``):
the accuracy since the summer's change, 0.71, is above its worst window before it, 0.665.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlwarden.agent.canary import CanaryVerdict, Paired, judge_paired
from mlwarden.agent.evidence import Answer
from mlwarden.agent.policy import ModelPolicy
from mlwarden.agent.remedies.retrain import (
    Validation,
    fit_like,
    load_estimator,
    training_set,
    validate,
)
from mlwarden.domain import Task
from mlwarden.serving.predictors import LocalPredictor
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store


def hindsight_window(
    change_window: int, newest: int | None, policy: ModelPolicy, since_window: int | None = None
) -> int:
    """The window a retrain is replayed from: ``retrain.hindsight_windows`` windows before the
    next one, not before the drop began. A retrain that learns only the records after window
    ``since_window`` (a concept drift) is replayed from the window after the first whole one
    it would learn, whatever came since: a changed relation is a lasting one, so the candidate
    that learnt it first must keep serving better than the champion on every window since."""
    if since_window is not None:
        return max(change_window, since_window + 2)
    if newest is None:
        return change_window
    return max(change_window, newest + 1 - policy.retrain.hindsight_windows)


def candidate_at(
    store: Store,
    model: str,
    champion_version: int,
    change_window: int,
    policy: ModelPolicy,
    since_window: int | None = None,
) -> tuple[Any | None, str]:
    """The candidate a retrain would have fitted when window ``change_window`` began (every
    labelled record that had arrived by then, the reference in front; with ``since_window``,
    only those after that window, as a concept-drift retrain learns), or None and why not."""
    if change_window <= 0:
        return None, "the drop began in the first window: nothing came before it to learn from"
    if since_window is not None and since_window >= change_window - 1:
        return (
            None,
            f"no whole window after window {since_window} had arrived by window {change_window}",
        )
    until = AgentRepo(store).window_end(model, change_window - 1)
    if until is None:
        return None, f"window {change_window - 1} was stored without its end"
    settings = policy.retrain
    data = training_set(
        store, model, champion_version, settings, since_window=since_window, until=until
    )
    if data.labelled < settings.min_labels:
        after = "" if since_window is None else f" after window {since_window}"
        return None, (
            f"only {data.labelled} labelled records{after} had arrived by window "
            f"{change_window}, {settings.min_labels} needed to retrain"
        )
    spec = store.get_model(model)
    x = pd.concat([data.x_train, data.held[spec.feature_names]], ignore_index=True)
    y = np.concatenate([np.asarray(data.y_train), data.held["__label__"].to_numpy()])
    champion = load_estimator(store.load_artifact(model, champion_version))
    return fit_like(champion, x, y, spec.task), ""


def judge_in_hindsight(
    store: Store,
    model: str,
    candidate: Any,
    champion: Answer,
    records: Sequence[Mapping[str, Any]],
    policy: ModelPolicy,
    change_window: int,
) -> CanaryVerdict:
    """``candidate`` (fitted before ``change_window``) against the champion's answers on the
    labelled ``records`` since: ``promote`` means a retrain then would have served better."""
    spec = store.get_model(model)
    task = spec.task or Task.CLASSIFICATION
    rows = [r for r in records if r.get("label") is not None and not r.get("error")]
    metric = "accuracy" if task is Task.CLASSIFICATION else "neg_mae"
    figures: dict[str, Any] = {"hindsight_from_window": change_window, "metric": metric}
    if len(rows) < policy.retrain.canary_min_labels:
        return CanaryVerdict(
            "wait",
            [
                f"{len(rows)} of {policy.retrain.canary_min_labels} labelled records since window "
                f"{change_window} to judge a retrain on"
            ],
            figures,
        )
    inputs = [r["features"] for r in rows]
    predictor = LocalPredictor(candidate, spec)
    paired = Paired(
        truth=np.array([r["label"] for r in rows], dtype=object),
        candidate=np.array([p.prediction for p in predictor.predict(inputs)], dtype=object),
        champion=np.array(champion(inputs), dtype=object),
    )
    return judge_paired(paired, task, metric, policy, figures)


def validate_now(
    store: Store,
    model: str,
    champion_version: int,
    policy: ModelPolicy,
    since_window: int | None = None,
) -> Validation | None:
    """The validation a retrain would run now (None: too few labelled records to run one)."""
    settings = policy.retrain
    data = training_set(store, model, champion_version, settings, since_window=since_window)
    if data.labelled < settings.min_labels:
        return None
    champion = load_estimator(store.load_artifact(model, champion_version))
    return validate(champion, data, store.get_model(model).task, settings)


__all__ = ["candidate_at", "hindsight_window", "judge_in_hindsight", "validate_now"]
