"""Prediction drift and collapse from profiles."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlwarden.agent.incidents import effect_ratio
from mlwarden.detect.prediction import (
    PredictionCollapseDetector,
    PredictionDriftDetector,
    output_signals,
)
from mlwarden.domain import FeatureSpec, FindingKind, ModelSpec, Task
from mlwarden.stats.profile import Profile

SPEC = ModelSpec(name="m", task=Task.CLASSIFICATION, features=[FeatureSpec(name="x")])
RNG = np.random.default_rng(0)


def _frame(n: int, p_yes: float = 0.5, score_sd: float = 0.2) -> pd.DataFrame:
    pred = np.where(RNG.random(n) < p_yes, "yes", "no")
    score = np.clip(RNG.normal(0.6, score_sd, n), 0, 1)
    return pd.DataFrame({"x": RNG.normal(size=n), "prediction": pred, "score": score})


REF = Profile.reference(_frame(5000), SPEC)


def _profile(frame: pd.DataFrame) -> Profile:
    return Profile.from_data(frame, REF.layout)


def test_clean_windows_raise_nothing() -> None:
    drift, collapse = PredictionDriftDetector(), PredictionCollapseDetector()
    alarms = sum(
        bool(drift.detect(REF, p) + collapse.detect(REF, p))
        for p in (_profile(_frame(1000)) for _ in range(100))
    )
    assert alarms == 0


def test_class_prior_shift_is_prediction_drift() -> None:
    found = PredictionDriftDetector().detect(REF, _profile(_frame(1000, p_yes=0.8)), window_index=4)
    assert [f.features for f in found] == [["prediction"]]
    assert found[0].kind is FindingKind.PREDICTION_DRIFT and found[0].window == 4
    assert "predicted classes drifted" in found[0].message and "yes" in found[0].message


def test_collapse_to_one_class_and_collapsed_confidence() -> None:
    frame = _frame(1000, p_yes=1.0, score_sd=0.001)
    found = PredictionCollapseDetector().detect(REF, _profile(frame))
    assert {f.statistic for f in found} == {"top_class_share", "spread_lost"}
    assert all(f.evidence["collapse"] for f in found)
    share = next(f for f in found if f.statistic == "top_class_share")
    assert share.score == 1.0 and "'yes'" in share.message


def test_an_imbalanced_model_stuck_on_its_rare_class_is_a_collapse() -> None:
    """A model that answers "no" for 92 % of flights: stuck on "yes" is a collapse (the
    reference's top class held more than 90 %, which used to disable the check); all "no" on a
    quiet window is not."""
    ref = Profile.reference(_frame(5000, p_yes=0.08), SPEC)
    stuck = Profile.from_data(_frame(1000, p_yes=1.0), ref.layout)
    found = PredictionCollapseDetector().detect(ref, stuck)
    share = next(f for f in found if f.statistic == "top_class_share")
    assert share.evidence["class"] == "yes" and share.evidence["reference_share"] < 0.1
    quiet = Profile.from_data(_frame(1000, p_yes=0.0), ref.layout)
    assert not [
        f for f in PredictionCollapseDetector().detect(ref, quiet) if f.features == ["prediction"]
    ]


def test_a_collapsed_spread_counts_past_its_threshold() -> None:
    """The agent counts a finding when score / threshold reaches 1: a confidence that stopped
    moving must reach it (its std ratio, 0, used to score 0 against 0.1 and never counted)."""
    frozen = PredictionCollapseDetector().detect(REF, _profile(_frame(1000, score_sd=0.0)))
    spread = next(f for f in frozen if f.statistic == "spread_lost")
    assert spread.evidence["std_ratio"] == 0.0 and effect_ratio(spread) > 1.0
    narrower = PredictionCollapseDetector().detect(REF, _profile(_frame(1000, score_sd=0.05)))
    assert not [f for f in narrower if f.statistic == "spread_lost"]  # a quarter of it: no


def test_regression_outputs_collapse() -> None:
    spec = ModelSpec(name="r", task=Task.REGRESSION, features=[FeatureSpec(name="x")])
    ref = Profile.reference(
        pd.DataFrame({"x": RNG.normal(size=3000), "prediction": RNG.normal(50, 10, 3000)}), spec
    )
    flat = Profile.from_data(
        pd.DataFrame({"x": RNG.normal(size=500), "prediction": np.full(500, 50.0)}), ref.layout
    )
    found = PredictionCollapseDetector().detect(ref, flat)
    assert [f.statistic for f in found] == ["spread_lost"]
    moved = Profile.from_data(
        pd.DataFrame({"x": RNG.normal(size=500), "prediction": RNG.normal(60, 10, 500)}), ref.layout
    )
    drift = PredictionDriftDetector().detect(ref, moved)
    assert drift and drift[0].statistic == "wasserstein" and "predicted values" in drift[0].message


def test_small_or_missing_outputs_are_not_judged() -> None:
    tiny = _profile(_frame(5, p_yes=1.0))
    assert PredictionCollapseDetector().detect(REF, tiny) == []
    no_outputs = _profile(pd.DataFrame({"x": RNG.normal(size=100)}))
    assert PredictionDriftDetector().detect(REF, no_outputs) == []
    signals = output_signals(_profile(_frame(100)))
    assert 0 < (signals["prediction_share.yes"] or 0) < 1 and signals["score_std"]


def test_a_frozen_model_is_diagnosed_constant_predictions_not_a_confidence_collapse() -> None:
    """One answer and one score for every row is a frozen model: its collapse findings say
    ``check: constant`` (the constant_predictions playbook's strongest pattern), so the score's
    own drift (``check: confidence``) does not make it a confidence collapse. A model that
    still varies a little is a collapse without that mark. On time-ordered electricity the
    frozen model was diagnosed confidence_collapse (docs/benchmarks.md, this session)."""
    from mlwarden.diagnose.incident import diagnose_incident

    frozen = _frame(1000, p_yes=1.0)
    frozen["score"] = 1.0
    window = _profile(frozen)
    found = PredictionCollapseDetector().detect(REF, window, window_index=6)
    assert {f.statistic: f.evidence.get("check") for f in found} == {
        "top_class_share": "constant",
        "spread_lost": "constant",
    }
    found += PredictionDriftDetector().detect(REF, window, window_index=6)
    assert any(f.evidence.get("check") == "confidence" for f in found)
    diagnosis = diagnose_incident(found, model="m")
    assert diagnosis.matches[0].id == "constant_predictions"
    # answers the reference never gave, many of them, fall in one bucket: not one answer
    unseen = _frame(1000).assign(prediction=[f"class-{i % 7}" for i in range(1000)])
    assert not [
        f
        for f in PredictionCollapseDetector().detect(REF, _profile(unseen))
        if f.evidence.get("check") == "constant"
    ]
    almost = _frame(1000, p_yes=0.97, score_sd=0.001)
    assert not [
        f
        for f in PredictionCollapseDetector().detect(REF, _profile(almost))
        if f.evidence.get("check") == "constant"
    ]
