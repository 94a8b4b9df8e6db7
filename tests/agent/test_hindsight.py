"""A retrain judged in hindsight: the candidate fitted when the drop began, on the records since."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from agent_helpers import FEATURES, MODEL, train

from mlwarden.agent.hindsight import candidate_at, hindsight_window, judge_in_hindsight
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


def _windows(store: Store, frames: list[pd.DataFrame], version: int) -> None:
    """Windows 1.. of ``elec``, one per frame, stored (labelled) with their ends."""
    from agent_helpers import START, last_record_key, send_records

    from mlwarden.store.incidents import AgentRepo

    repo = AgentRepo(store)
    for number, frame in enumerate(frames, start=1):
        send_records(store, frame, version=version, prefix=f"w{number}-")
        end = last_record_key(store)
        repo.save_window(
            MODEL, number, START, {"records": float(len(frame))}, [],
            end_received_at=end[0], end_record_id=end[1],
        )  # fmt: skip


def _records_of(store: Store, window: int) -> list[dict[str, Any]]:
    from mlwarden.store.incidents import AgentRepo

    after = AgentRepo(store).window_end(MODEL, window - 1)
    return store.records_by_arrival(MODEL, after=after, limit=100_000)


def _flipped(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(target=1 - frame["target"])


def test_a_concept_drift_retrain_is_replayed_on_the_records_after_the_change_alone(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    """The relation flips from window 3: the candidate a concept-drift retrain would have
    fitted at window 4 (window 3 alone, no reference) serves window 4 far better than the
    champion, and far better than one fitted on the reference and windows 1-3 too."""
    frames = [elec.iloc[2000:3000], elec.iloc[3000:4000]]
    frames += [_flipped(elec.iloc[4000:5000]), _flipped(elec.iloc[5000:6000])]
    _windows(store, frames, deployed["v2"])
    champion = train(elec.iloc[:2000])
    since = _records_of(store, 4)
    assert len(since) == 1000
    after_change, why = candidate_at(store, MODEL, deployed["v2"], 4, POLICY, since_window=2)
    assert after_change is not None, why
    verdict = judge_in_hindsight(
        store, MODEL, after_change, _answers(champion), since, POLICY, change_window=4
    )
    assert verdict.decision == "promote", verdict.text
    everything, why = candidate_at(store, MODEL, deployed["v2"], 4, POLICY)
    assert everything is not None, why
    inputs = [r["features"] for r in since]
    truth = np.array([r["label"] for r in since])
    learnt = np.mean(np.array(_answers(after_change)(inputs)) == truth)
    mixed = np.mean(np.array(_answers(everything)(inputs)) == truth)
    assert learnt > mixed + 0.2, (learnt, mixed)


def test_a_concept_drift_retrain_that_would_not_beat_the_champion_is_not_justified(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    """The relation flipped in window 3 and flipped back: the retrain on the records after the
    change would have served window 4 worse than the champion."""
    frames = [elec.iloc[2000:3000], elec.iloc[3000:4000]]
    frames += [_flipped(elec.iloc[4000:5000]), elec.iloc[5000:6000]]
    _windows(store, frames, deployed["v2"])
    candidate, why = candidate_at(store, MODEL, deployed["v2"], 4, POLICY, since_window=2)
    assert candidate is not None, why
    verdict = judge_in_hindsight(
        store, MODEL, candidate, _answers(train(elec.iloc[:2000])), _records_of(store, 4), POLICY, 4
    )
    assert verdict.decision == "reject", verdict.text


def test_a_concept_drift_retrain_waits_for_a_whole_window_after_the_change(
    store: Store, deployed: dict
) -> None:
    candidate, why = candidate_at(store, MODEL, deployed["v2"], 3, POLICY, since_window=2)
    assert candidate is None and "no whole window after window 2" in why
    # the window replayed from: hindsight_windows (3) back, not before the drop began; for a
    # retrain after window 2 alone, the one after the first whole window it learns, always
    assert hindsight_window(3, 9, POLICY) == 7
    assert hindsight_window(3, 4, POLICY) == 3
    assert hindsight_window(3, 4, POLICY, since_window=2) == 4
    assert hindsight_window(3, 9, POLICY, since_window=2) == 4
    assert hindsight_window(3, 3, POLICY, since_window=2) == 4  # later than the newest: wait
