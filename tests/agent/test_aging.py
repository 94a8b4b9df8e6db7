"""A retrain is asked only on a stream where past retrains, replayed, kept their gain."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from agent_helpers import MODEL, store_windows

from mlwarden.agent.aging import AGE, AgedGains, retrains_age_badly
from mlwarden.agent.hindsight import candidate_at
from mlwarden.agent.loop import Agent
from mlwarden.agent.policy import load_policy_text
from mlwarden.agent.remedies.retrain import load_estimator
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store

POLICY = load_policy_text("defaults: {}")

# control_electricity in time order: candidates fitted at windows 3-5, scored from their second
# window on (each a window of 1,000 labelled records)
AGED_BADLY = [
    (3, 5, -0.146, 1000), (3, 6, -0.129, 1000), (3, 7, 0.042, 1000), (4, 6, 0.005, 1000),
    (4, 7, 0.128, 1000), (4, 8, -0.028, 1000), (5, 7, 0.065, 1000), (5, 8, -0.029, 1000),
]  # fmt: skip
# elec_label_shift: the candidates fitted after the shift keep their gain at every age
AGED_WELL = [(5, 7, 0.105, 1000), (5, 8, 0.088, 1000), (6, 8, 0.123, 1000), (4, 6, 0.010, 1000)]


def test_retrains_that_served_worse_once_two_windows_old_are_not_asked_again() -> None:
    why = retrains_age_badly(AgedGains("accuracy", 2, AGED_BADLY))
    assert why is not None
    # one vote per retrain: its mean over the windows it is scored on
    assert "the 3 retrains replayed at windows 3-5 served -0.0082 accuracy" in why
    assert "(fitted at 3: -0.0777, 4: +0.0350, 5: +0.0180; 8 windows scored)" in why
    assert "from their 2nd window after the fit" in why and "ages badly" in why


def test_retrains_that_kept_their_gain_are_no_reason_to_refuse() -> None:
    assert retrains_age_badly(AgedGains("accuracy", 2, AGED_WELL)) is None


def test_too_few_replayed_windows_say_nothing() -> None:
    assert retrains_age_badly(AgedGains("accuracy", 2, AGED_BADLY[:2])) is None
    assert retrains_age_badly(AgedGains("accuracy", 2, [])) is None
    # windows with few labels are no cells: two left of the eight
    thin = [(*cell[:3], 40) for cell in AGED_BADLY[2:]]
    assert retrains_age_badly(AgedGains("accuracy", 2, [*AGED_BADLY[:2], *thin])) is None


def _accuracy(estimator: Any, rows: list[dict[str, Any]], features: list[str]) -> float:
    frame = pd.DataFrame([r["features"] for r in rows], columns=features)
    truth = np.array([r["label"] for r in rows])
    return float(np.mean(estimator.predict(frame) == truth))


def _window(store: Store, window: int) -> list[dict[str, Any]]:
    repo = AgentRepo(store)
    after = repo.window_end(MODEL, window - 1) if window else None
    return store.records_by_arrival(MODEL, after=after, until=repo.window_end(MODEL, window))


def test_the_agent_replays_each_past_retrain_from_its_second_window_on(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    """Six windows of electricity in time order: the retrains at windows 1-3, each scored on
    every window from its second after the fit, against the live version, on the same records."""
    store_windows(store, [elec.iloc[a : a + 1000] for a in range(2000, 8000, 1000)], deployed["v2"])
    aged = Agent(store, policy=POLICY)._aged_gains(MODEL, deployed["v2"])
    assert aged is not None and aged.age == AGE == 2 and aged.metric == "accuracy"
    assert [(h, w) for h, w, _, _ in aged.cells] == [(1, 3), (1, 4), (1, 5), (2, 4), (2, 5), (3, 5)]
    policy = POLICY.for_model(MODEL)
    features = deployed["spec"].feature_names
    champion = load_estimator(store.load_artifact(MODEL, deployed["v2"]))
    for fitted, window, gain, labels in aged.cells:
        candidate, why = candidate_at(store, MODEL, deployed["v2"], fitted, policy)
        assert candidate is not None, why
        rows = _window(store, window)
        assert labels == len(rows) == 1000
        expected = _accuracy(candidate, rows, features) - _accuracy(champion, rows, features)
        assert gain == expected


def test_a_lasting_change_leaves_retrains_their_gain(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    """The relation flips at window 1 and stays flipped: every retrain that learnt more of the
    new relation than of the old (fitted at window 3 on) keeps beating the live version by 25
    points or more at every age, so a retrain is not refused."""
    flipped = [elec.iloc[a : a + 1000] for a in range(3000, 10000, 1000)]
    frames = [elec.iloc[2000:3000], *(f.assign(target=1 - f["target"]) for f in flipped)]
    store_windows(store, frames, deployed["v2"])
    aged = Agent(store, policy=POLICY)._aged_gains(MODEL, deployed["v2"])
    assert aged is not None and {h for h, _, _, _ in aged.cells} == {1, 2, 3, 4, 5}
    learnt = [gain for fitted, _, gain, _ in aged.cells if fitted >= 3]
    assert len(learnt) == 6 and min(learnt) > 0.25, aged.cells
    assert retrains_age_badly(aged) is None
