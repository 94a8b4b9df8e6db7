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

A drop with a known change of the relation (concept drift) is judged the same way, on the
retrain it calls for: the recipe fitted on the records after the change point alone (no
reference in front), up to ``retrain.hindsight_windows`` windows ago but never before one
whole window after the change has been learnt, scored against the champion on the labelled
records since. Until such a window and labelled records after it exist, the retrain is not
asked for yet (the incident is alerted; the question is asked again next window). On
time-ordered real data the concept-drift finding is often true and still no reason to
retrain: spring and summer storms raised the share of late New York departures from 23 % to
30 % and the labels disagreed with the model beyond what its inputs explained, but a
retrain asked on that finding alone (``control_flights``, ``flights_latency``,
``flights_bad_deploy`` in time order) had no evidence it would serve better, and on the
control streams the canaries of such retrains were removed (docs/benchmarks.md "A
concept-drift retrain judged on evidence"). Where the relation really flipped
(``elec_time_concept_change``) the candidate fitted on one window after the change serves the
next ones far better than the champion, and the retrain goes ahead a window later.
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
