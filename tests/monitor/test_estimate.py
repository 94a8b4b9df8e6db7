"""CBPE: estimated performance from calibrated confidence, and its error once labels arrive."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlwarden.monitor.estimate import CBPE, estimation_error, expected_auc
from mlwarden.stats.performance import classification_metrics


def _data(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=shift, size=(n, 3))
    logit = 1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_estimate_tracks_true_accuracy_under_covariate_shift(method: str) -> None:
    x_train, y_train = _data(3000, 0.0, 1)
    model = LogisticRegression().fit(x_train, y_train)
    x_ref, y_ref = _data(3000, 0.0, 2)
    cbpe = CBPE(method=method).fit(model.predict_proba(x_ref)[:, 1], y_ref, classes=[0, 1])
    # Covariate shift moves accuracy; P(y|x) is unchanged so the estimate must follow it.
    for shift, seed in ((0.0, 3), (1.0, 4)):
        x, y = _data(2000, shift, seed)
        score = model.predict_proba(x)[:, 1]
        pred = (score > 0.5).astype(int)
        estimated = cbpe.estimate(score, pred)
        actual = classification_metrics(y, pred, proba=score)
        errors = estimation_error(estimated, actual)
        assert errors["accuracy"]["abs_error"] < 0.03
        assert errors["f1"]["abs_error"] < 0.04
        acc = estimated["accuracy"]
        assert acc.ci_low is not None and acc.ci_high is not None
        assert acc.ci_low < acc.value < acc.ci_high


def test_estimate_misses_concept_drift_and_the_error_report_shows_it() -> None:
    x_train, y_train = _data(3000, 0.0, 1)
    model = LogisticRegression().fit(x_train, y_train)
    x_ref, y_ref = _data(3000, 0.0, 2)
    cbpe = CBPE().fit(model.predict_proba(x_ref)[:, 1], y_ref, classes=[0, 1])
    x, y = _data(2000, 0.0, 5)
    y = 1 - y  # the relation flipped: confidence no longer means correctness
    score = model.predict_proba(x)[:, 1]
    pred = (score > 0.5).astype(int)
    errors = estimation_error(cbpe.estimate(score, pred), classification_metrics(y, pred))
    assert errors["accuracy"]["abs_error"] > 0.3
    assert errors["accuracy"]["actual_inside_ci"] == 0.0


def test_multiclass_estimate() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([0.5, 0.5, 0.5], 6000)
    y = np.array([rng.choice(3, p=row) for row in proba])
    cbpe = CBPE().fit(proba[:3000], y[:3000], classes=[0, 1, 2])
    estimated = cbpe.estimate(proba[3000:])
    actual = classification_metrics(
        y[3000:], proba[3000:].argmax(axis=1), proba=proba[3000:], classes=[0, 1, 2]
    )
    assert abs(estimated["accuracy"].value - actual["accuracy"].value) < 0.03


def test_unusable_input_gives_reasons_not_errors() -> None:
    unfitted = CBPE().estimate([0.2, 0.9])
    assert unfitted["accuracy"].value is None and unfitted["accuracy"].reason == "not fitted"
    tiny = CBPE().fit([0.1, 0.9], [0, 1], classes=[0, 1])
    assert not tiny.fitted and "20" in (tiny.reason or "")
    fitted = CBPE().fit(np.linspace(0, 1, 100), np.arange(100) % 2, classes=[0, 1])
    assert fitted.estimate([0.5, float("nan")])["accuracy"].value is None
    assert fitted.estimate([])["accuracy"].value is None
    with pytest.raises(ValueError, match="unknown calibration method"):
        CBPE(method="magic")  # type: ignore[arg-type]


def test_roc_auc_estimate_tracks_the_realized_auc_with_an_interval() -> None:
    x_train, y_train = _data(3000, 0.0, 1)
    model = LogisticRegression().fit(x_train, y_train)
    x_ref, y_ref = _data(3000, 0.0, 2)
    cbpe = CBPE().fit(model.predict_proba(x_ref)[:, 1], y_ref, classes=[0, 1])
    for shift, seed in ((0.0, 3), (1.0, 4), (-1.5, 6)):
        x, y = _data(3000, shift, seed)
        score = model.predict_proba(x)[:, 1]
        estimated = cbpe.estimate(score, (score > 0.5).astype(int))["roc_auc"]
        actual = classification_metrics(y, score > 0.5, proba=score)["roc_auc"]
        assert abs(estimated.value - actual.value) < 0.02, shift
        assert estimated.ci_low < estimated.value < estimated.ci_high
        # the interval is the sampling noise of the window: as wide as the measured one
        width = estimated.ci_high - estimated.ci_low
        assert 0.5 < width / (actual.ci_high - actual.ci_low) < 2


def test_expected_auc_is_the_auc_when_the_labels_are_certain() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    score = np.round(rng.random(500), 1)  # many ties
    y = (rng.random(500) < score).astype(float)
    assert expected_auc(score, y) == pytest.approx(roc_auc_score(y, score))
    assert expected_auc(score, np.ones(500)) is None


def test_multiclass_roc_auc_estimate_is_the_one_vs_rest_macro() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([0.5, 0.5, 0.5], 8000)
    y = np.array([rng.choice(3, p=row) for row in proba])
    cbpe = CBPE().fit(proba[:4000], y[:4000], classes=[0, 1, 2])
    estimated = cbpe.estimate(proba[4000:])["roc_auc"]
    actual = classification_metrics(
        y[4000:], proba[4000:].argmax(axis=1), proba=proba[4000:], classes=[0, 1, 2]
    )["roc_auc"]
    assert abs(estimated.value - actual.value) < 0.02
    assert estimated.ci_low < actual.value < estimated.ci_high
    assert CBPE().estimate([0.2, 0.9])["roc_auc"].reason == "not fitted"
