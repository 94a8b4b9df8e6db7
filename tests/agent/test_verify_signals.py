"""Which signals verification compares with the baseline, and in which direction."""

from __future__ import annotations

from mlwarden.agent.incidents import WindowView
from mlwarden.agent.policy import load_policy
from mlwarden.agent.verify import verify


def test_a_drift_p_value_rising_back_to_one_is_recovery_not_a_regression() -> None:
    policy = load_policy().for_model("m")
    baseline = {"accuracy": 0.76, "drift_p.nswprice": 0.91, "drift.nswprice": 0.02}
    after = [
        WindowView(
            window=9, signals={"accuracy": 0.78, "drift_p.nswprice": 1.0, "drift.nswprice": 0.01}
        ),
        WindowView(
            window=10, signals={"accuracy": 0.77, "drift_p.nswprice": 1.0, "drift.nswprice": 0.02}
        ),
    ]
    verdict = verify(after, baseline, ["concept_drift"], policy)
    assert verdict.recovered, verdict.text


def test_accuracy_below_the_baseline_is_not_recovery() -> None:
    policy = load_policy().for_model("m")
    after = [WindowView(window=w, signals={"accuracy": 0.60}) for w in (9, 10)]
    verdict = verify(after, {"accuracy": 0.76}, ["concept_drift"], policy)
    assert not verdict.recovered and "accuracy" in verdict.text


def test_after_a_fallback_the_lighter_models_lower_accuracy_is_not_a_failed_recovery() -> None:
    policy = load_policy().for_model("m")
    baseline = {"accuracy": 0.77, "latency_p99_ms": 7.0}
    after = [
        WindowView(window=w, signals={"accuracy": 0.70, "latency_p99_ms": 7.2}) for w in (7, 8)
    ]
    assert verify(after, baseline, ["latency"], policy, action_kind="fallback").recovered
    # the same windows after a rollback: the model is expected to be as good as before
    assert not verify(after, baseline, ["latency"], policy, action_kind="rollback").recovered


def test_after_a_fallback_the_other_models_prediction_drift_does_not_block_recovery() -> None:
    from mlwarden.domain import Finding, FindingKind

    policy = load_policy().for_model("m")
    drift = Finding(
        kind=FindingKind.PREDICTION_DRIFT,
        detector="prediction.drift",
        features=["prediction"],
        statistic="jensen_shannon",
        score=0.15,
        threshold=0.1,
        message="predicted classes drifted",
    )
    after = [WindowView(window=w, findings=[drift], signals={"error_rate": 0.0}) for w in (8, 9)]
    kinds = ["error_rate", "prediction_drift"]
    baseline = {"error_rate": 0.0}
    assert verify(after, baseline, kinds, policy, action_kind="fallback").recovered
    assert not verify(after, baseline, kinds, policy, action_kind="retrain").recovered
