"""Concept drift: CI-based performance drop, River streaming detectors, attribution."""

from __future__ import annotations

import numpy as np
import pytest

from mlwarden.detect.concept import (
    StreamingErrorDetector,
    attribute_drop,
    estimated_drop,
    performance_drop,
)
from mlwarden.domain import Finding, FindingKind
from mlwarden.stats.performance import (
    MetricValue,
    classification_metrics,
    classification_spreads,
    wilson_interval,
)


def test_drop_flags_only_when_the_whole_interval_is_below_reference_minus_tolerance() -> None:
    ref = MetricValue("accuracy", 0.90, 0.89, 0.91, 10_000)
    rng = np.random.default_rng(0)
    noisy = 0
    for _ in range(200):  # healthy windows of 300 rows: noisy accuracy, never a finding
        y = rng.integers(0, 2, 300)
        pred = np.where(rng.random(300) < 0.9, y, 1 - y)
        correct = int((y == pred).sum())
        acc = MetricValue("accuracy", correct / 300, *wilson_interval(correct, 300), n=300)
        noisy += performance_drop("accuracy", ref, acc) is not None
    assert noisy == 0
    y = rng.integers(0, 2, 1000)
    bad = classification_metrics(y, np.where(rng.random(1000) < 0.8, y, 1 - y))["accuracy"]
    finding = performance_drop("accuracy", ref, bad, window_index=3)
    assert finding is not None and finding.kind is FindingKind.CONCEPT_DRIFT
    assert finding.window == 3 and finding.score == pytest.approx(0.9 - bad.value)
    assert "accuracy fell from 0.900" in finding.message


def test_error_metrics_drop_upwards_with_relative_tolerance() -> None:
    ref = MetricValue("rmse", 10.0, 9.8, 10.2, 5000)
    assert performance_drop("rmse", ref, MetricValue("rmse", 10.5, 10.2, 10.8, 1000)) is None
    worse = performance_drop("rmse", ref, MetricValue("rmse", 13.0, 12.5, 13.5, 1000))
    assert worse is not None and worse.threshold == pytest.approx(1.0)
    assert performance_drop("rmse", ref, MetricValue.undefined("rmse", 0, "none")) is None


@pytest.mark.parametrize("method", ["adwin", "page_hinkley"])
def test_streaming_detector_sees_error_increase_but_not_noise(method: str) -> None:
    rng = np.random.default_rng(1)
    det = StreamingErrorDetector(method)  # type: ignore[arg-type]
    alarms = sum(
        det.finding(det.update(rng.random(1000) < 0.15), w) is not None for w in range(100)
    )
    assert alarms == 0
    found = [det.finding(det.update(rng.random(1000) < 0.35), w) for w in range(2)]
    assert any(f is not None for f in found)
    first = next(f for f in found if f is not None)
    assert first.evidence["error_after"] > first.evidence["error_before"] + 0.1


def test_error_decrease_is_not_reported() -> None:
    rng = np.random.default_rng(2)
    det = StreamingErrorDetector("adwin")
    det.update(rng.random(5000) < 0.3)
    assert det.finding(det.update(rng.random(2000) < 0.05)) is None


def test_attribution_concept_vs_data_drift_with_impact() -> None:
    drop = performance_drop(
        "accuracy",
        MetricValue("accuracy", 0.9, 0.89, 0.91, 5000),
        MetricValue("accuracy", 0.7, 0.67, 0.73, 1000),
        window_index=2,
    )
    assert drop is not None
    concept = attribute_drop(drop, [])
    assert concept.kind is FindingKind.CONCEPT_DRIFT and concept.evidence["inputs_stable"]
    moved = Finding(
        kind=FindingKind.DATA_DRIFT,
        detector="feature_drift",
        features=["age"],
        statistic="wasserstein",
        score=0.4,
        threshold=0.1,
        message="age drifted",
    )
    data = attribute_drop(drop, [moved])
    assert data.kind is FindingKind.DATA_DRIFT and data.features == ["age"]
    assert data.evidence["impact"]["metric"] == "accuracy"
    assert data.evidence["impact"]["drop"] == pytest.approx(0.2)
    assert "data drift with impact" in data.message


def test_unknown_method_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown streaming detector"):
        StreamingErrorDetector("ddm2")  # type: ignore[arg-type]


def test_domain_classifier_blames_its_most_separating_features_not_all() -> None:
    drop = performance_drop(
        "accuracy",
        MetricValue("accuracy", 0.9, 0.89, 0.91, 5000),
        MetricValue("accuracy", 0.7, 0.67, 0.73, 1000),
    )
    assert drop is not None
    joint = Finding(
        kind=FindingKind.DATA_DRIFT,
        detector="domain_classifier",
        features=["a", "b", "c", "d", "e"],
        statistic="domain_auc",
        score=0.8,
        threshold=0.55,
        message="joint distribution changed",
        evidence={"feature_auc": {"a": 0.5, "b": 0.9, "c": 0.7, "d": 0.51, "e": 0.6}},
    )
    assert attribute_drop(drop, [joint]).features == ["b", "c", "e"]


def test_estimated_drop_uses_the_reference_chunk_spread_at_the_window_size() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 20_000)
    pred = np.where(rng.random(20_000) < 0.9, y, 1 - y)
    spread = classification_spreads(y, pred)["accuracy"]
    assert spread.level == pytest.approx(0.9, abs=0.01)
    # reference-like chunks of 1000 rows: their accuracy crosses level - 3 std about as often
    # as a normal variable does (0.13%, 0.4 in 300), never in bulk
    quiet = 0
    for _ in range(300):
        ix = rng.integers(0, 20_000, 1000)
        value = float((y[ix] == pred[ix]).mean())
        quiet += estimated_drop(spread, MetricValue("accuracy", value, n=1000)) is not None
    assert quiet <= 2
    # the same 0.03 shortfall is a drop at 5000 rows (std 0.004) but noise at 100 (std 0.03)
    assert (
        estimated_drop(spread, MetricValue("accuracy", spread.level - 0.03, n=5000), window_index=2)
        is not None
    )
    assert estimated_drop(spread, MetricValue("accuracy", spread.level - 0.03, n=100)) is None
    found = estimated_drop(spread, MetricValue("accuracy", spread.level - 0.03, n=5000))
    assert found is not None and found.kind is FindingKind.CONCEPT_DRIFT
    assert found.evidence["estimated"] is True
    assert found.evidence["performance_drop"] == pytest.approx(0.03)
    assert found.threshold == pytest.approx(3 * spread.std(5000))
    assert estimated_drop(spread, MetricValue.undefined("accuracy", 0, "no rows")) is None


def test_estimated_error_metrics_drop_upwards() -> None:
    from mlwarden.stats.performance import MetricSpread

    spread = MetricSpread("rmse", 10.0, 60.0)  # std 1.9 at 1000 rows
    assert estimated_drop(spread, MetricValue("rmse", 15.0, n=1000)) is None
    found = estimated_drop(spread, MetricValue("rmse", 17.0, n=1000))
    assert found is not None and found.evidence["performance_drop"] == pytest.approx(0.7)
