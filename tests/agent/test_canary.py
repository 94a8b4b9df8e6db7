"""Canary judgement on real stored records: promote, reject or wait."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from agent_helpers import FEATURES, MODEL, START, add_version, send_records, train

from mlwarden.agent.canary import judge_canary
from mlwarden.agent.policy import load_policy_text
from mlwarden.store.repository import Store

POLICY = load_policy_text("defaults: {retrain: {canary_min_labels: 100}}").for_model(MODEL)


def _records(
    store: Store,
    rows: pd.DataFrame,
    *,
    version: int,
    served_by: str,
    prefix: str,
    error_share: float = 0.0,
    correct_share: float | None = None,
) -> None:
    """Records of ``version`` for ``rows``: a share failing, and (with ``correct_share``) labelled
    so that that share of the answers is right."""
    rng = np.random.default_rng(len(prefix) + version)
    records, labels = [], []
    for i, (index, row) in enumerate(rows.iterrows()):
        failed = rng.random() < error_share
        prediction = None if failed else int(row["target"])
        records.append(
            {
                "id": f"{prefix}{index}",
                "model": MODEL,
                "version": version,
                "timestamp": START + timedelta(minutes=i),
                "features": {f: float(row[f]) for f in FEATURES},
                "prediction": prediction,
                "error": "predict failed" if failed else None,
                "served_by": served_by,
            }
        )
        if correct_share is not None and not failed:
            right = rng.random() < correct_share
            labels.append((f"{prefix}{index}", prediction if right else 1 - int(row["target"])))
    store.insert_records(records)
    if labels:
        store.add_feedback(MODEL, labels)


def _judge(store: Store, rollout: str, deployed: dict[str, Any]) -> Any:
    return judge_canary(store, MODEL, deployed["v2"], deployed["v1"], rollout, POLICY)


def _serve(
    store: Store,
    rows: pd.DataFrame,
    *,
    champion: Any,
    candidate: Any,
    versions: tuple[int, int],
    canary_every: int = 10,
) -> None:
    """Real traffic: every ``canary_every``-th request answered by the candidate as a canary,
    the others by the live champion, each with its own real prediction and the true label."""
    mask = np.arange(len(rows)) % canary_every == 0
    for served, estimator, version, prefix in (
        (mask, candidate, versions[1], "c"),
        (~mask, champion, versions[0], "l"),
    ):
        part = rows[served]
        send_records(
            store,
            part,
            version=version,
            prefix=prefix,
            predictions=estimator.predict(part[FEATURES]),
            served_by="canary" if prefix == "c" else "live",
        )


def test_a_candidate_better_on_the_same_requests_is_promoted(
    store: Store, deployed: dict[str, Any], elec: pd.DataFrame
) -> None:
    """The champion learnt on the oldest records; the candidate on the month before the
    traffic. Both are scored on every labelled request of the period, the canary's and the
    champion's alike: the served answer for one, a replay of the stored inputs for the other."""
    champion = train(elec.iloc[:2000])  # the recipe of the live v2 fixture, refitted here
    candidate = train(elec.iloc[29000:32000])
    v3 = add_version(store, candidate, elec.iloc[29000:32000], "unknown")
    _serve(
        store,
        elec.iloc[32000:32800],
        champion=champion,
        candidate=candidate,
        versions=(deployed["v2"], v3),
    )
    verdict = judge_canary(store, MODEL, v3, deployed["v2"], "canary", POLICY)
    paired = verdict.figures["paired"]
    assert verdict.decision == "promote" and "better by more than 0.02" in verdict.text
    assert paired["requests"] == 800  # all of them, not the 80 the canary answered
    truth = elec.iloc[32000:32800]["target"].to_numpy()
    x = elec.iloc[32000:32800][FEATURES]
    assert paired["candidate"] == pytest.approx(float(np.mean(candidate.predict(x) == truth)))
    assert paired["champion"] == pytest.approx(float(np.mean(champion.predict(x) == truth)))
    assert paired["interval"][0] > POLICY.retrain.canary_min_gain


def test_a_candidate_worse_on_the_same_requests_is_rejected_and_too_few_labels_wait(
    store: Store, deployed: dict[str, Any], elec: pd.DataFrame
) -> None:
    """A candidate that learnt noise (shuffled labels) is rejected on the paired requests; with
    fewer labelled requests than the policy asks for there is no verdict yet."""
    recent = elec.iloc[29000:32000]
    noise = recent.assign(target=np.random.default_rng(0).permutation(recent["target"]))
    champion, candidate = train(recent), train(noise)
    v3 = add_version(store, champion, recent, "healthy")
    v4 = add_version(store, candidate, noise, "unknown")
    _serve(
        store,
        elec.iloc[32000:32090],
        champion=champion,
        candidate=candidate,
        versions=(v3, v4),
        canary_every=2,
    )
    assert judge_canary(store, MODEL, v4, v3, "canary", POLICY).decision == "wait"
    _serve(
        store,
        elec.iloc[32090:32600],
        champion=champion,
        candidate=candidate,
        versions=(v3, v4),
        canary_every=2,
    )
    verdict = judge_canary(store, MODEL, v4, v3, "canary", POLICY)
    assert verdict.decision == "reject", verdict.text
    assert verdict.figures["paired"]["interval"][1] < 0


def test_a_candidate_no_better_than_the_champion_is_not_promoted(
    store: Store, deployed: dict[str, Any], elec: pd.DataFrame
) -> None:
    """The champion's own recipe on the same data answers exactly as it does: changing the live
    version for no gain is a risk without a reason, and no number of requests can show the
    gain the policy asks for, so the candidate is removed rather than left serving."""
    champion = train(elec.iloc[:2000])
    v3 = add_version(store, train(elec.iloc[:2000]), elec.iloc[:2000], "unknown")
    _serve(
        store,
        elec.iloc[32000:32800],
        champion=champion,
        candidate=champion,
        versions=(deployed["v2"], v3),
    )
    verdict = judge_canary(store, MODEL, v3, deployed["v2"], "canary", POLICY)
    assert verdict.decision == "reject" and "cannot be shown better by 0.02" in verdict.text
    assert verdict.figures["paired"]["difference"] == 0.0


def test_a_shadow_is_judged_on_its_failures_without_labels(
    store: Store, deployed: dict[str, Any], elec: pd.DataFrame
) -> None:
    _records(store, elec.iloc[150:450], version=deployed["v1"], served_by="live", prefix="l")
    _records(store, elec.iloc[:120], version=deployed["v2"], served_by="shadow", prefix="s")
    assert _judge(store, "shadow", deployed).decision == "promote"
    _records(
        store,
        elec.iloc[120:240],
        version=deployed["v2"],
        served_by="shadow",
        prefix="t",
        error_share=0.5,
    )
    verdict = _judge(store, "shadow", deployed)
    assert verdict.decision == "reject" and "failed" in verdict.text
