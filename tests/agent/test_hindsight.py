"""A retrain judged in hindsight: the candidate fitted when the drop began, on the records since."""

from __future__ import annotations

from typing import Any

import pandas as pd
from agent_helpers import FEATURES, MODEL, train

from mlwarden.agent.hindsight import candidate_at, judge_in_hindsight
from mlwarden.agent.policy import load_policy_text
from mlwarden.store.repository import Store

POLICY = load_policy_text("defaults: {}").for_model(MODEL)


def _since(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "features": {f: float(row[f]) for f in FEATURES},
            "label": int(row["target"]),
            "error": None,
        }
        for _, row in frame.iterrows()
    ]


def _answers(estimator: Any) -> Any:
    return lambda inputs: list(estimator.predict(pd.DataFrame(inputs, columns=FEATURES)))


def test_a_retrain_that_learnt_the_new_regime_would_have_helped(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    champion = train(elec.iloc[:2000])
    before_the_drop = train(elec.iloc[7000:10000])  # what a retrain at the drop would learn
    verdict = judge_in_hindsight(
        store,
        MODEL,
        before_the_drop,
        _answers(champion),
        _since(elec.iloc[10000:11500]),
        POLICY,
        change_window=5,
    )
    assert verdict.decision == "promote", verdict.text
    assert verdict.figures["paired"]["requests"] == 1500
    assert verdict.figures["hindsight_from_window"] == 5


def test_a_retrain_that_learnt_nothing_new_would_not_have_helped(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    champion = train(elec.iloc[:2000])
    verdict = judge_in_hindsight(
        store,
        MODEL,
        train(elec.iloc[:2000]),
        _answers(champion),
        _since(elec.iloc[20000:21500]),
        POLICY,
        change_window=5,
    )
    assert verdict.decision == "reject", verdict.text
    assert "cannot be shown better by 0.02" in verdict.text


def test_too_few_labels_since_the_drop_wait(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    champion = train(elec.iloc[:2000])
    verdict = judge_in_hindsight(
        store, MODEL, champion, _answers(champion), _since(elec.iloc[:50]), POLICY, 3
    )
    assert verdict.decision == "wait" and "50 of 100 labelled records" in verdict.text


def test_a_drop_from_the_first_window_has_nothing_before_it_to_learn(
    store: Store, deployed: dict
) -> None:
    candidate, why = candidate_at(store, MODEL, deployed["v2"], 0, POLICY)
    assert candidate is None and "first window" in why
    candidate, why = candidate_at(store, MODEL, deployed["v2"], 4, POLICY)
    assert candidate is None and "window 3 was stored without its end" in why
