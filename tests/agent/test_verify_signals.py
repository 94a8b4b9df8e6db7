"""Which signals verification compares with the baseline, and in which direction."""

from __future__ import annotations

from mlwarden.agent.incidents import WindowView
from mlwarden.agent.policy import load_policy
from mlwarden.agent.verify import verify


def test_a_drift_p_value_rising_back_to_one_is_recovery_not_a_regression() -> None:
    policy = load_policy().for_model("m")
    baseline = {"accuracy": 0.76, "drift_p.nswprice": 0.91, "drift.nswprice": 0.02}
    after = [
        WindowView(window=9, signals={"accuracy": 0.78, "drift_p.nswprice": 1.0,
                                      "drift.nswprice": 0.01}),
        WindowView(window=10, signals={"accuracy": 0.77, "drift_p.nswprice": 1.0,
                                       "drift.nswprice": 0.02}),
    ]
    verdict = verify(after, baseline, ["concept_drift"], policy)
    assert verdict.recovered, verdict.text


def test_accuracy_below_the_baseline_is_not_recovery() -> None:
    policy = load_policy().for_model("m")
    after = [WindowView(window=w, signals={"accuracy": 0.60}) for w in (9, 10)]
    verdict = verify(after, {"accuracy": 0.76}, ["concept_drift"], policy)
    assert not verdict.recovered and "accuracy" in verdict.text
