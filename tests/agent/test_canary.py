"""Canary judgement on real stored records: promote, reject or wait."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from agent_helpers import FEATURES, MODEL, START

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


def test_a_canary_as_good_as_the_champion_is_promoted(
    store: Store, deployed: dict[str, Any], elec: pd.DataFrame
) -> None:
    _records(store, elec.iloc[:150], version=deployed["v2"], served_by="canary", prefix="c",
             correct_share=0.85)
    _records(store, elec.iloc[150:450], version=deployed["v1"], served_by="live", prefix="l",
             correct_share=0.84)
    verdict = _judge(store, "canary", deployed)
    assert verdict.decision == "promote", verdict.text
    assert verdict.figures["candidate"]["labelled"] == 150


def test_a_canary_clearly_worse_is_rejected_and_too_few_labels_wait(
    store: Store, deployed: dict[str, Any], elec: pd.DataFrame
) -> None:
    _records(store, elec.iloc[:60], version=deployed["v2"], served_by="canary", prefix="c",
             correct_share=0.6)
    _records(store, elec.iloc[150:450], version=deployed["v1"], served_by="live", prefix="l",
             correct_share=0.85)
    assert _judge(store, "canary", deployed).decision == "wait"  # 60 of 100 labels
    _records(store, elec.iloc[60:150], version=deployed["v2"], served_by="canary", prefix="d",
             correct_share=0.6)
    verdict = _judge(store, "canary", deployed)
    assert verdict.decision == "reject" and "worse than the tolerance" in verdict.text


def test_a_shadow_is_judged_on_its_failures_without_labels(
    store: Store, deployed: dict[str, Any], elec: pd.DataFrame
) -> None:
    _records(store, elec.iloc[150:450], version=deployed["v1"], served_by="live", prefix="l")
    _records(store, elec.iloc[:120], version=deployed["v2"], served_by="shadow", prefix="s")
    assert _judge(store, "shadow", deployed).decision == "promote"
    _records(store, elec.iloc[120:240], version=deployed["v2"], served_by="shadow", prefix="t",
             error_share=0.5)
    verdict = _judge(store, "shadow", deployed)
    assert verdict.decision == "reject" and "failed" in verdict.text
