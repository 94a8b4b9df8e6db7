"""Anomalies over window signals: rules and Isolation Forest."""

from __future__ import annotations

import numpy as np

from mlwarden.detect.anomaly import SignalAnomalyDetector, SignalRule
from mlwarden.domain import FindingKind


def test_rules_bound_a_signal() -> None:
    rule = SignalRule("error_rate", maximum=0.05)
    assert rule.check({"error_rate": 0.01}, 1) is None
    assert rule.check({"error_rate": None}, 1) is None
    found = rule.check({"error_rate": 0.2}, 1)
    assert found is not None and found.kind is FindingKind.ANOMALY and "above" in found.message


def test_isolation_forest_waits_for_history_then_flags_unusual_windows_only() -> None:
    rng = np.random.default_rng(3)
    det = SignalAnomalyDetector(min_history=30)

    def healthy() -> dict[str, float | None]:
        load = rng.normal(100, 10)
        return {
            "throughput": load,
            "latency_p99_ms": 50 + 0.2 * load + rng.normal(0, 1),
            "error_rate": abs(rng.normal(0.01, 0.002)),
            "accuracy_ci_low": None,
        }

    assert det.check({"throughput": 1e6, "latency_p99_ms": 1.0, "error_rate": 0.5}) == []
    alarms = 0
    for w in range(80):
        signals = healthy()
        alarms += bool(det.check(signals, w))
        det.observe(signals)
    assert alarms == 0
    odd = {"throughput": 100.0, "latency_p99_ms": 120.0, "error_rate": 0.01}
    found = det.check(odd, 300)
    assert found and found[0].statistic == "isolation_forest"
    assert "latency_p99_ms" in found[0].features
