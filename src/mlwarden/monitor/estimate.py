"""Estimated classification performance before labels arrive.

Confidence-based performance estimation (CBPE, NannyML; described in "Estimating model performance
without ground truth", NannyML docs 2022, after the idea of expected metrics from calibrated
confidence): if the model's scores are *calibrated*, the probability that a prediction is right
is its calibrated confidence, so expected accuracy is the mean confidence of the predicted class
and the expected confusion matrix (hence precision, recall, F1) is the sum of calibrated
probabilities. Calibration is learnt on the reference, where labels are known, with isotonic
regression (Zadrozny & Elkan, 2002) or Platt scaling (Platt, 1999), one-vs-rest per class.

ROC AUC is estimated the same way (NannyML's CBPE does it from the expected TPR/FPR curve): each
row counts as a positive with its calibrated probability p and as a negative with 1 - p, so the
expected share of (positive, negative) pairs that the model's raw score orders correctly is the
expected AUC; multi-class problems average it one-vs-rest over the classes (macro).

The estimate is only as good as the assumption that P(y | score) did not change: it tracks
covariate shift, not concept drift. :func:`estimation_error` reports how far off it was once the
labels arrive.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> score = rng.random(4000)
>>> label = (rng.random(4000) < score).astype(int)          # calibrated by construction
>>> est = CBPE().fit(score[:2000], label[:2000], classes=[0, 1])
>>> value = est.estimate(score[2000:])["accuracy"].value
>>> bool(abs(value - np.mean((score[2000:] > .5) == label[2000:])) < 0.03)
True
>>> from mlwarden.stats.performance import classification_metrics
>>> auc = est.estimate(score[2000:])["roc_auc"]
>>> actual = classification_metrics(label[2000:], score[2000:] > .5, proba=score[2000:])
>>> bool(abs(auc.value - actual["roc_auc"].value) < 0.03), auc.ci_low < auc.value < auc.ci_high
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from mlwarden.stats.performance import (
    MetricValue,
    canonical_label,
    canonical_labels,
    hanley_mcneil_variance,
    proba_matrix,
)

__all__ = ["CBPE", "estimation_error", "expected_auc"]

ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


class CBPE:
    """Calibrate reference scores, then estimate accuracy, precision, recall, F1 and ROC AUC on
    unlabelled rows.

    ``method`` is ``"isotonic"`` (default; needs a few hundred reference rows) or ``"platt"``.
    Scores are an (n, k) probability matrix over ``classes`` or, for binary problems, the
    positive-class score (the last of ``classes``).
    """

    def __init__(
        self, method: Literal["isotonic", "platt"] = "isotonic", confidence: float = 0.95
    ) -> None:
        if method not in ("isotonic", "platt"):
            raise ValueError(f"unknown calibration method {method!r}: use 'isotonic' or 'platt'")
        self.method = method
        self.confidence = confidence
        self.classes: list[str] = []
        self._calibrators: list[Any] = []
        self.fitted = False
        self.reason: str | None = "not fitted"

    def fit(self, scores: Any, labels: Sequence[Any], classes: Sequence[Any]) -> CBPE:
        """Learn one calibration map per class from reference scores and their true labels."""
        self.classes = [c for c in (canonical_label(c) for c in classes) if c is not None]
        probs = proba_matrix(scores, self.classes)
        truth = canonical_labels(labels)
        if probs is None or len(truth) != len(probs):
            self.reason = "reference scores are missing, not in [0, 1], or misaligned with labels"
            return self
        keep = np.array([t in self.classes for t in truth], dtype=bool)
        probs = probs[keep]
        index = {c: i for i, c in enumerate(self.classes)}
        y = np.array(
            [index[t] for t, k in zip(truth, keep, strict=True) if k and t is not None], dtype=int
        )
        if len(y) < 20 or len(set(y.tolist())) < 2:
            self.reason = "calibration needs at least 20 labelled reference rows and two classes"
            return self
        self._calibrators = []
        columns = [1] if len(self.classes) == 2 else range(len(self.classes))
        for c in columns:
            target = (y == c).astype(int)
            if self.method == "isotonic":
                model: Any = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
                model.fit(probs[:, c], target)
            else:
                model = LogisticRegression(C=1e6)
                model.fit(_logit(probs[:, c]).reshape(-1, 1), target)
            self._calibrators.append(model)
        self.fitted = True
        self.reason = None
        return self

    def calibrate(self, scores: Any) -> np.ndarray | None:
        """Calibrated (n, k) probabilities, or None when the scores are unusable."""
        probs = proba_matrix(scores, self.classes)
        if probs is None or not self.fitted:
            return None
        if len(probs) == 0:
            return np.empty((0, len(self.classes)))
        columns = [1] if len(self.classes) == 2 else range(len(self.classes))
        calibrated = np.column_stack(
            [
                self._apply(model, probs[:, c])
                for model, c in zip(self._calibrators, columns, strict=True)
            ]
        )
        if len(self.classes) == 2:
            return np.column_stack([1 - calibrated[:, 0], calibrated[:, 0]])
        total = calibrated.sum(axis=1, keepdims=True)
        uniform = np.full_like(calibrated, 1.0 / calibrated.shape[1])
        return np.where(total > 0, calibrated / np.where(total > 0, total, 1.0), uniform)

    def _apply(self, model: Any, column: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.asarray(model.predict(column), dtype=float)
        return np.asarray(model.predict_proba(_logit(column).reshape(-1, 1))[:, 1], dtype=float)

    def estimate(
        self, scores: Any, predictions: Sequence[Any] | None = None
    ) -> dict[str, MetricValue]:
        """Expected accuracy, precision, recall, F1 and ROC AUC on rows with scores but no labels.

        ``predictions`` default to the arg-max of the scores. Accuracy's interval is the
        normal approximation to the Poisson-binomial count of correct rows: it covers the
        sampling noise of this window, not a calibration error.
        """
        calibrated = self.calibrate(scores)
        n = 0 if calibrated is None else len(calibrated)
        if calibrated is None or n == 0:
            reason = self.reason or (
                "no rows"
                if calibrated is not None
                else "window scores are missing or not probabilities"
            )
            return {m: MetricValue.undefined(m, n, reason) for m in ESTIMATED_METRICS}
        index = {c: i for i, c in enumerate(self.classes)}
        raw = proba_matrix(scores, self.classes)
        assert raw is not None
        if predictions is None:
            pred = raw.argmax(axis=1)
        else:
            pred = np.array([index.get(v or "", -1) for v in canonical_labels(predictions)])
        rows = np.arange(n)
        p_correct = np.where(pred >= 0, calibrated[rows, np.clip(pred, 0, None)], 0.0)
        out: dict[str, MetricValue] = {}
        acc = float(p_correct.mean())
        half = _z(self.confidence) * math.sqrt(float(np.sum(p_correct * (1 - p_correct)))) / n
        out["accuracy"] = MetricValue(
            "accuracy", acc, max(0.0, acc - half), min(1.0, acc + half), n, method="cbpe"
        )
        if len(self.classes) == 2:
            p_pos = calibrated[:, 1]
            tp = float(p_pos[pred == 1].sum())
            fp = float((1 - p_pos)[pred == 1].sum())
            fn = float(p_pos[pred != 1].sum())
            out["precision"] = _ratio("precision", tp, tp + fp, n)
            out["recall"] = _ratio("recall", tp, tp + fn, n)
            out["f1"] = _ratio("f1", 2 * tp, 2 * tp + fp + fn, n)
        else:
            values: dict[str, list[float]] = {"precision": [], "recall": [], "f1": []}
            for c in range(len(self.classes)):
                tp = float(calibrated[pred == c, c].sum())
                fp = float((1 - calibrated[pred == c, c]).sum())
                fn = float(calibrated[pred != c, c].sum())
                for name, num, den in (
                    ("precision", tp, tp + fp),
                    ("recall", tp, tp + fn),
                    ("f1", 2 * tp, 2 * tp + fp + fn),
                ):
                    if den > 0:
                        values[name].append(num / den)
            for name, vals in values.items():
                out[name] = (
                    MetricValue(name, float(np.mean(vals)), n=n, method="cbpe")
                    if vals
                    else MetricValue.undefined(name, n, "no expected positives")
                )
        out["roc_auc"] = self._roc_auc(raw, calibrated, n)
        return out

    def _roc_auc(self, raw: np.ndarray, calibrated: np.ndarray, n: int) -> MetricValue:
        """Expected ROC AUC (binary, or one-vs-rest macro) with a Hanley-McNeil interval over
        the expected class counts; the raw scores order the rows, as they do for the real AUC
        (isotonic calibration ties them in steps)."""
        columns = [1] if len(self.classes) == 2 else range(len(self.classes))
        values, variances = [], []
        for c in columns:
            auc = expected_auc(raw[:, c], calibrated[:, c])
            if auc is None:
                continue
            positives = float(calibrated[:, c].sum())
            values.append(auc)
            variances.append(hanley_mcneil_variance(auc, positives, n - positives))
        if not values:
            return MetricValue.undefined("roc_auc", n, "no expected positives or negatives")
        value = float(np.mean(values))
        # the classes' AUCs are averaged: the variance of a mean of k of them is sum / k^2
        half = _z(self.confidence) * math.sqrt(sum(variances)) / len(values)
        return MetricValue(
            "roc_auc", value, max(0.0, value - half), min(1.0, value + half), n, method="cbpe"
        )


def expected_auc(score: np.ndarray, p_positive: np.ndarray) -> float | None:
    """The ROC AUC of ``score`` expected when row i is a positive with probability
    ``p_positive[i]``: expected correctly ordered (positive, negative) pairs over expected pairs,
    ties counting one half (the Mann-Whitney form of the AUC). None without expected positives
    or negatives.

    >>> round(expected_auc(np.array([0.1, 0.4, 0.8]), np.array([0.0, 0.5, 1.0])), 3)
    1.0
    >>> round(expected_auc(np.array([0.5, 0.5]), np.array([0.0, 1.0])), 3)
    0.5
    """
    score = np.asarray(score, dtype=float)
    pos = np.asarray(p_positive, dtype=float)
    neg = 1.0 - pos
    pairs = float(pos.sum() * neg.sum() - np.sum(pos * neg))
    if len(score) < 2 or pairs <= 1e-12:
        return None
    order = np.argsort(score, kind="mergesort")
    s, p, q = score[order], pos[order], neg[order]
    # group tied scores: each group's positives beat all negatives below it and half of the
    # negatives inside it (a row is never paired with itself)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    group_pos = np.add.reduceat(p, starts)
    group_neg = np.add.reduceat(q, starts)
    group_self = np.add.reduceat(p * q, starts)
    below = np.cumsum(group_neg) - group_neg
    correct = float(np.sum(group_pos * below) + 0.5 * np.sum(group_pos * group_neg - group_self))
    return min(1.0, max(0.0, correct / pairs))


def estimation_error(
    estimated: Mapping[str, MetricValue], actual: Mapping[str, MetricValue]
) -> dict[str, dict[str, float | None]]:
    """How far each estimate was from the metric measured once labels arrived.

    >>> e = {"accuracy": MetricValue("accuracy", 0.9)}
    >>> a = {"accuracy": MetricValue("accuracy", 0.85)}
    >>> round(estimation_error(e, a)["accuracy"]["abs_error"], 3)
    0.05
    """
    out: dict[str, dict[str, float | None]] = {}
    for name, est in estimated.items():
        act = actual.get(name)
        if act is None:
            continue
        error = (
            abs(est.value - act.value) if est.value is not None and act.value is not None else None
        )
        inside = None
        if act.value is not None and est.ci_low is not None and est.ci_high is not None:
            inside = float(est.ci_low <= act.value <= est.ci_high)
        out[name] = {
            "estimated": est.value,
            "actual": act.value,
            "abs_error": error,
            "actual_inside_ci": inside,
        }
    return out


def _ratio(name: str, num: float, den: float, n: int) -> MetricValue:
    if den <= 0:
        return MetricValue.undefined(name, n, "no expected positives")
    return MetricValue(name, num / den, n=n, method="cbpe")


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(clipped / (1 - clipped)))


def _z(confidence: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(0.5 + confidence / 2))
