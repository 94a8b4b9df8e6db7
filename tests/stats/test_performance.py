"""Performance metrics and their intervals, checked against scikit-learn on the same data."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlwarden.stats.performance import (
    MetricValue,
    canonical_label,
    canonical_labels,
    classification_metrics,
    regression_metrics,
    wilson_interval,
)


@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 800)
    score = np.clip(0.35 * y + 0.65 * rng.random(800), 0, 1)
    return y, (score > 0.5).astype(int), score


def test_binary_metrics_match_sklearn(binary: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    y, pred, score = binary
    m = classification_metrics(y, pred, proba=score)
    assert m["accuracy"].value == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"].value == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"].value == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"].value == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, score))
    assert m["log_loss"].value == pytest.approx(skm.log_loss(y, score))
    for value in m.values():
        assert value.ci_low is not None and value.ci_high is not None
        assert value.ci_low <= value.value <= value.ci_high


def test_multiclass_macro_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 600)
    proba = rng.dirichlet([1, 1, 1], 600)
    proba[np.arange(600), y] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    m = classification_metrics(y, pred, proba=proba, classes=[0, 1, 2])
    assert m["precision"].value == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert m["recall"].value == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert m["f1"].value == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert m["log_loss"].value == pytest.approx(skm.log_loss(y, proba))


def test_wilson_interval_covers_true_accuracy_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(400):
        correct = rng.random(200) < 0.8
        low, high = wilson_interval(correct.sum(), 200)
        covered += low <= 0.8 <= high
    assert 0.92 <= covered / 400 <= 0.98


def test_bootstrap_interval_is_reproducible_and_narrows_with_n() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=4000)
    f = y + rng.normal(scale=0.5, size=4000)
    small = regression_metrics(y[:200], f[:200])
    again = regression_metrics(y[:200], f[:200])
    large = regression_metrics(y, f)
    assert small["rmse"] == again["rmse"]

    def width(m: MetricValue) -> float:
        assert m.ci_low is not None and m.ci_high is not None
        return m.ci_high - m.ci_low

    assert width(large["rmse"]) < width(small["rmse"])
    assert large["rmse"].value == pytest.approx(math.sqrt(skm.mean_squared_error(y, f)))
    assert large["mae"].value == pytest.approx(skm.mean_absolute_error(y, f))
    assert large["r2"].value == pytest.approx(skm.r2_score(y, f))


def test_bootstrap_interval_is_the_percentile_interval_of_seeded_draws(
    binary: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """The intervals are scored on all draws at once; they must be those of the documented
    method: 200 draws of n rows with replacement from ``default_rng(seed)``, one after the
    other, and the 2.5 % and 97.5 % quantiles of the statistic on them."""

    def percentile_interval(statistic: Any, n: int, seed: int = 0) -> tuple[float, float]:
        rng = np.random.default_rng(seed)
        draws = [statistic(rng.integers(0, n, n)) for _ in range(200)]
        low, high = np.quantile(draws, [0.025, 0.975])
        return float(low), float(high)

    y, pred, score = binary
    found = classification_metrics(y, pred, proba=score)
    right = (pred == y).astype(float)
    loss = -np.log(np.where(y == 1, score, 1 - score).clip(1e-15, 1))
    expected = {
        "f1": percentile_interval(lambda ix: skm.f1_score(y[ix], pred[ix]), len(y)),
        "log_loss": percentile_interval(lambda ix: loss[ix].mean(), len(y)),
        "ece": percentile_interval(lambda ix: _ece(score[ix], right[ix]), len(y)),
    }
    for name, (low, high) in expected.items():
        assert (found[name].ci_low, found[name].ci_high) == pytest.approx((low, high)), name
    truth = np.random.default_rng(3).normal(size=500)
    guess = truth + np.random.default_rng(4).normal(size=500)
    reg = regression_metrics(truth, guess, seed=9)
    err = truth - guess
    assert (reg["mae"].ci_low, reg["mae"].ci_high) == pytest.approx(
        percentile_interval(lambda ix: np.abs(err[ix]).mean(), 500, seed=9)
    )
    assert (reg["r2"].ci_low, reg["r2"].ci_high) == pytest.approx(
        percentile_interval(lambda ix: skm.r2_score(truth[ix], guess[ix]), 500, seed=9)
    )


def _ece(score: np.ndarray, right: np.ndarray, bins: int = 10) -> float:
    """Top-label ECE of binary scores, written out bin by bin."""
    confidence = np.maximum(score, 1 - score)
    slot = np.minimum((confidence * bins).astype(int), bins - 1)
    return sum(
        abs(confidence[slot == b].sum() - right[slot == b].sum()) for b in range(bins)
    ) / len(score)


def test_large_window_uses_bounded_bootstrap_and_keeps_a_sensible_interval() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 60_000)
    score = np.clip(0.3 * y + 0.7 * rng.random(60_000), 0, 1)
    auc = classification_metrics(y, (score > 0.5).astype(int), proba=score)["roc_auc"]
    assert auc.ci_low < auc.value < auc.ci_high
    assert auc.ci_high - auc.ci_low < 0.02


def test_undefined_metrics_come_back_as_none_with_a_reason_never_nan() -> None:
    one_class = classification_metrics([1, 1, 1], [1, 0, 1], proba=[0.9, 0.4, 0.8])
    assert one_class["roc_auc"].value is None and "two classes" in one_class["roc_auc"].reason
    assert classification_metrics([], [])["accuracy"].reason == "no labelled rows"
    no_scores = classification_metrics([0, 1], [0, 1])
    assert no_scores["log_loss"].value is None and no_scores["log_loss"].reason
    single = regression_metrics([1.0], [2.0])
    assert single["r2"].value is None
    assert regression_metrics(["a", None], ["b", 1])["rmse"].reason == "no labelled rows"
    bad_scores = classification_metrics([0, 1], [0, 1], proba=[float("nan"), 0.7])
    assert bad_scores["roc_auc"].value is None
    for result in (one_class, no_scores, single, bad_scores):
        for value in result.values():
            assert value.value is None or math.isfinite(value.value)


def test_labels_of_mixed_spelling_compare_equal() -> None:
    assert canonical_label(1) == canonical_label(1.0) == canonical_label("1") == "1"
    assert canonical_label(float("nan")) is None and canonical_label("") is None
    m = classification_metrics(["1", "0", 1.0], [1, 0, "1"])
    assert m["accuracy"].value == 1.0


def test_labels_spelled_in_bulk_match_one_by_one() -> None:
    values = [
        1,
        1.0,
        "1",
        " 1 ",
        True,
        np.int64(1),
        np.float64(0.0),
        -0.0,
        2.5,
        float("nan"),
        np.nan,
        None,
        "",
        "NaN",
        "cat",
        "cat",
        Decimal("1.50"),
        Decimal("1.5"),
        pd.NA,
        np.bool_(False),
        10**20,
        "x",
    ]
    assert canonical_labels(values * 2) == [canonical_label(v) for v in values * 2]
    numbers = pd.Series([1.0, -0.0, 0.0, np.nan, 2.5, np.inf, 1e20, 1.0])
    assert canonical_labels(numbers) == [canonical_label(v) for v in numbers]
    assert canonical_labels(numbers.to_numpy()) == [canonical_label(v) for v in numbers]
    nullable = pd.Series([1, None, 0], dtype="Int64")
    assert canonical_labels(nullable) == nullable.map(canonical_label).tolist()
    assert canonical_labels(pd.Series([True, False])) == ["1", "0"]
