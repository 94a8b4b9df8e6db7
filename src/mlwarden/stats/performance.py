"""Model performance on labelled records, each metric with a confidence interval.

Classification: accuracy, precision, recall, F1, ROC AUC, log loss and expected calibration
error (ECE). Regression: RMSE, MAE and R². Proportions (accuracy, precision, recall) get the
Wilson score interval (Wilson, 1927, "Probable inference, the law of succession, and statistical
inference", JASA 22); the others a percentile bootstrap (Efron & Tibshirani, 1993, "An
Introduction to the Bootstrap") with a fixed seed and a bounded number of resamples.

A metric that is undefined on the data (one class present, fewer than two rows, no scores)
comes back as ``value=None`` with a ``reason``; NaN never leaves this module.

>>> import numpy as np
>>> m = classification_metrics([1, 0, 1, 1], [1, 0, 0, 1], proba=np.array([.9, .2, .4, .8]))
>>> round(m["accuracy"].value, 2), m["roc_auc"].value
(0.75, 1.0)
>>> classification_metrics([1, 1], [1, 1], proba=[.9, .8], classes=[0, 1])["roc_auc"].reason
'needs at least two rows and two classes among the labels'
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "MetricSpread",
    "MetricValue",
    "canonical_label",
    "canonical_labels",
    "classification_metrics",
    "classification_spreads",
    "hanley_mcneil_variance",
    "label_sort_key",
    "proba_matrix",
    "reference_spread",
    "regression_metrics",
    "regression_spreads",
    "to_float_array",
    "wilson_interval",
]

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "ece")
REGRESSION_METRICS = ("rmse", "mae", "r2")
# Metrics where a larger value is better; the others (log loss, ECE, RMSE, MAE) are errors.
HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "roc_auc", "r2"}

_DEFAULT_RESAMPLES = 200
# Bootstrapping a 1M-row window 200 times costs 200M index draws; above this size we bootstrap a
# fixed subsample and shrink the interval by sqrt(m/n) (m-out-of-n bootstrap, Bickel et al. 1997).
_MAX_BOOTSTRAP_ROWS = 10_000


@dataclass(frozen=True)
class MetricValue:
    """One metric on one set of records: value and interval, or None and the reason why."""

    name: str
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    reason: str | None = None
    method: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def undefined(cls, name: str, n: int, reason: str) -> MetricValue:
        return cls(name=name, value=None, n=n, reason=reason)


def canonical_label(value: Any) -> str | None:
    """One spelling per class label, so that 1, 1.0, "1" and True-as-1 compare equal.

    Labels arrive from CSV (ints), JSON (strings) and models (numpy scalars) for the same record.
    """
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, bool):
        return str(int(value))
    text = str(value).strip()
    if text == "" or text.lower() in {"nan", "none", "null"}:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer():
        return str(int(number))
    return text


# Types whose equal values always spell the same label, so one spelling can serve them all.
_SPELLED_ONCE = (str, int, float, bool, np.integer, np.floating, np.bool_)


def canonical_labels(values: Iterable[Any]) -> list[str | None]:
    """:func:`canonical_label` of every value. A window holds a handful of distinct labels a
    thousand times over, so each distinct value (of a plain type) is spelled once.

    >>> canonical_labels([1, "1", 1.0, None, "cat", 1])
    ['1', '1', '1', None, 'cat', '1']
    """
    if (
        isinstance(values, pd.Series | pd.Index)
        and isinstance(values.dtype, np.dtype)
        and values.dtype.kind in "biuf"
    ):
        values = values.to_numpy()
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "biuf":
        # Equal numbers spell alike (0.0 and -0.0 as "0", every NaN as None): spell the
        # distinct ones and spread them back.
        distinct, where = np.unique(values, return_inverse=True)
        spellings = [canonical_label(v) for v in distinct.tolist()]
        return [spellings[i] for i in where.tolist()]
    if isinstance(values, pd.Series | pd.Index | np.ndarray):
        values = values.tolist()
    spelled: dict[tuple[type, Any], str | None] = {}
    out: list[str | None] = []
    for value in values:
        if not isinstance(value, _SPELLED_ONCE):
            out.append(canonical_label(value))
            continue
        key = (type(value), value)
        label = spelled.get(key, spelled)
        if label is spelled:
            label = spelled[key] = canonical_label(value)
        out.append(label)  # type: ignore[arg-type]
    return out


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson, 1927).

    >>> low, high = wilson_interval(90, 100)
    >>> round(low, 3), round(high, 3)
    (0.826, 0.945)
    """
    if n <= 0:
        raise ValueError("the Wilson interval needs n > 0")
    z = _normal_quantile(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@functools.lru_cache(maxsize=16)
def _normal_quantile(q: float) -> float:
    """The standard normal quantile; every interval asks it for the same few levels."""
    return float(stats.norm.ppf(q))


def _proportion(name: str, successes: float, n: int, confidence: float) -> MetricValue:
    low, high = wilson_interval(successes, n, confidence)
    return MetricValue(name, successes / n, low, high, n, method="wilson")


def _bootstrap(
    name: str,
    statistic: Callable[[np.ndarray], float | None],
    n: int,
    confidence: float,
    resamples: int,
    seed: int,
) -> MetricValue:
    """Point value on all rows plus a percentile bootstrap interval over row indices."""
    value = statistic(np.arange(n))
    if value is None or not math.isfinite(value):
        return MetricValue.undefined(name, n, "undefined on these rows")
    shrink = 1.0
    if n > _MAX_BOOTSTRAP_ROWS:
        shrink = math.sqrt(_MAX_BOOTSTRAP_ROWS / n)
    draws = _resampled(statistic, _draws(n, min(n, _MAX_BOOTSTRAP_ROWS), resamples, seed))
    if len(draws) < max(10, resamples // 2):
        return MetricValue(
            name,
            float(value),
            None,
            None,
            n,
            method="bootstrap",
            reason="too few valid resamples for an interval",
        )
    alpha = (1 - confidence) / 2
    low, high = np.quantile(np.asarray(draws), [alpha, 1 - alpha])
    centre = float(np.mean(draws)) if shrink != 1.0 else float(value)
    if shrink != 1.0:
        low = value - (centre - low) * shrink
        high = value + (high - centre) * shrink
    return MetricValue(
        name, float(value), float(min(low, value)), float(max(high, value)), n, method="bootstrap"
    )


def _draws(n: int, chunk: int, resamples: int, seed: int) -> np.ndarray:
    """Row indices of ``resamples`` draws, one per row of the result, of ``chunk`` rows with
    replacement: from all n rows, or (chunk < n) from a seeded subsample of chunk of them.

    ``default_rng(seed)`` draws the subsample, then the draws one after the other (one
    (resamples, chunk) call is the same stream of integers as ``resamples`` calls of chunk).
    The same arguments give the same draws, so every metric of a window and every window of
    the same size share them; those of up to ``_CACHED_DRAWS`` indices are kept.
    """
    if chunk * resamples <= _CACHED_DRAWS:
        return _cached_draws(n, chunk, resamples, seed)
    return _new_draws(n, chunk, resamples, seed)


def _new_draws(n: int, chunk: int, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.sort(rng.choice(n, chunk, replace=False)) if chunk < n else np.arange(n)
    rows = base[rng.integers(0, chunk, (resamples, chunk))]
    rows.flags.writeable = False
    return rows


_CACHED_DRAWS = 1_000_000  # 8 MB each
_cached_draws = functools.lru_cache(maxsize=4)(_new_draws)


def _resampled(statistic: Callable[[np.ndarray], float | None], draws: np.ndarray) -> np.ndarray:
    """The statistic on every draw (row) of ``draws``; draws where it is undefined are left
    out."""
    if isinstance(statistic, _Rowwise):
        values = statistic.many(draws)
        return np.asarray(values[np.isfinite(values)])
    found = []
    for rows in draws:
        result = statistic(rows)
        if result is not None and math.isfinite(result):
            found.append(float(result))
    return np.asarray(found, dtype=float)


class _Rowwise:
    """A statistic of row indices written along the last axis of the index array, so a matrix
    of bootstrap draws (one draw per row) is scored in one call instead of a Python loop.
    NaN stands for undefined; called on one 1-D index array it answers a float or None."""

    # Draws scored per call: bounds the gathered arrays to ~10 MB at 10,000 rows a draw.
    _CHUNK = 64

    def __init__(self, along_last_axis: Callable[[np.ndarray], Any]) -> None:
        self._statistic = along_last_axis

    def __call__(self, ix: np.ndarray) -> float | None:
        value = float(self._statistic(ix))
        return value if math.isfinite(value) else None

    def many(self, ix: np.ndarray) -> np.ndarray:
        return (
            np.concatenate(
                [
                    np.asarray(self._statistic(ix[i : i + self._CHUNK]), dtype=float)
                    for i in range(0, len(ix), self._CHUNK)
                ]
            )
            if len(ix)
            else np.empty(0)
        )


@dataclass(frozen=True)
class MetricSpread:
    """A metric's level on the reference and how much it moves from one chunk of rows to another.

    ``unit_std`` is the standard deviation over resampled reference chunks times the square root
    of their size: the metric is a mean or a U-statistic, so its chunk-to-chunk spread at any
    window size n is ``unit_std / sqrt(n)``.

    >>> spread = MetricSpread("accuracy", 0.9, 0.3)
    >>> round(spread.std(900), 3), round(spread.lower(900), 3)
    (0.01, 0.87)
    """

    name: str
    level: float
    unit_std: float
    # the rows the level was measured on (None: unknown, taken as exact)
    reference_n: int | None = None

    def std(self, n: int) -> float:
        return self.unit_std / math.sqrt(max(n, 1))

    def level_std(self) -> float:
        """The standard error of ``level`` itself: a 1,000-row reference's accuracy is known
        to about +/-0.013 (one standard error at 0.8), as uncertain as one 1,000-row window's.

        >>> round(MetricSpread("accuracy", 0.8, 0.4, reference_n=1000).level_std(), 4)
        0.0126
        """
        return 0.0 if not self.reference_n else self.std(self.reference_n)

    def lower(self, n: int, sigmas: float = 3.0) -> float:
        """The level less ``sigmas`` chunk standard deviations at window size ``n``."""
        return self.level - sigmas * self.std(n)

    def upper(self, n: int, sigmas: float = 3.0) -> float:
        return self.level + sigmas * self.std(n)


def reference_spread(
    name: str,
    statistic: Callable[[np.ndarray], float | None],
    n: int,
    resamples: int = 100,
    seed: int = 0,
    size: int = 5000,
) -> MetricSpread | None:
    """Level of ``statistic`` (a function of row indices) on n reference rows and its spread over
    ``resamples`` chunks of ``min(n, size)`` rows drawn with replacement.

    NannyML sets its alert thresholds at the mean +/- 3 standard deviations of a metric over
    the reference's chunks; drawing the chunks gives as many as needed from a short reference,
    at any window size. None when the statistic is undefined on the reference.

    >>> rng = np.random.default_rng(0)
    >>> right = rng.random(10_000) < 0.9
    >>> spread = reference_spread("accuracy", lambda ix: float(right[ix].mean()), len(right))
    >>> round(spread.level, 2), round(spread.std(1000), 2)
    (0.9, 0.01)
    """
    if n < 2:
        return None
    level = statistic(np.arange(n))
    if level is None or not math.isfinite(level):
        return None
    chunk = min(n, size)
    draws = _resampled(statistic, _draws(n, chunk, resamples, seed))
    if len(draws) < max(10, resamples // 2):
        return None
    return MetricSpread(
        name, float(level), float(np.std(draws, ddof=1)) * math.sqrt(chunk), reference_n=n
    )


def proba_matrix(scores: Any, classes: Sequence[str | None]) -> np.ndarray | None:
    """Scores as an (n, k) probability matrix over ``classes``.

    A 1-D array is read as the probability of the *last* class (the positive one) of a binary
    problem. Rows with a missing or out-of-[0, 1] value make the matrix unusable (None).
    """
    if scores is None:
        return None
    matrix = np.asarray(scores, dtype=float)
    if matrix.ndim == 1:
        if len(classes) != 2:
            return None
        matrix = np.column_stack([1 - matrix, matrix])
    if matrix.ndim != 2 or matrix.shape[1] != len(classes) or not np.isfinite(matrix).all():
        return None
    if (matrix < -1e-9).any() or (matrix > 1 + 1e-9).any():
        return None
    return np.asarray(np.clip(matrix, 0.0, 1.0))


def classification_metrics(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    proba: Any = None,
    classes: Sequence[Any] | None = None,
    positive: Any = None,
    confidence: float = 0.95,
    resamples: int = _DEFAULT_RESAMPLES,
    seed: int = 0,
    ece_bins: int = 10,
) -> dict[str, MetricValue]:
    """Accuracy, precision, recall, F1, ROC AUC, log loss and ECE, each with an interval.

    Binary problems score precision/recall/F1/AUC for ``positive`` (default: the last class in
    sorted order, i.e. ``1`` for 0/1 labels); multi-class problems use macro averages.
    ``proba`` is an (n, k) matrix over ``classes`` or, for binary, the positive-class score.
    """
    t, p, probs, k = _encoded(y_true, y_pred, proba, classes, positive)
    n = len(t)
    if n == 0:
        return {
            name: MetricValue.undefined(name, 0, "no labelled rows")
            for name in CLASSIFICATION_METRICS
        }
    binary = k == 2
    out: dict[str, MetricValue] = {}

    out["accuracy"] = _proportion("accuracy", float((t == p).sum()), n, confidence)
    if binary:
        pos_i = 1
        predicted_pos = int((p == pos_i).sum())
        actual_pos = int((t == pos_i).sum())
        tp = int(((p == pos_i) & (t == pos_i)).sum())
        out["precision"] = (
            _proportion("precision", tp, predicted_pos, confidence)
            if predicted_pos
            else MetricValue.undefined("precision", n, "no positive predictions")
        )
        out["recall"] = (
            _proportion("recall", tp, actual_pos, confidence)
            if actual_pos
            else MetricValue.undefined("recall", n, "no positive labels")
        )
    else:
        out["precision"] = _bootstrap(
            "precision",
            lambda ix: _macro(t[ix], p[ix], k, "precision"),
            n,
            confidence,
            resamples,
            seed,
        )
        out["recall"] = _bootstrap(
            "recall", lambda ix: _macro(t[ix], p[ix], k, "recall"), n, confidence, resamples, seed
        )
    hit, said, was = (p == 1) & (t == 1), p == 1, t == 1
    f1 = (
        _Rowwise(lambda ix: _binary_f1(hit[ix], said[ix], was[ix]))
        if binary
        else (lambda ix: _macro(t[ix], p[ix], k, "f1"))
    )
    out["f1"] = _bootstrap("f1", f1, n, confidence, resamples, seed)
    if out["f1"].value is None:
        out["f1"] = MetricValue.undefined("f1", n, "no positive labels or predictions")

    distinct = len(set(t.tolist()) - {-1})
    if probs is None:
        reason = "no usable probability scores"
        for name in ("roc_auc", "log_loss", "ece"):
            out[name] = MetricValue.undefined(name, n, reason)
        return out
    if n < 2 or distinct < 2:
        out["roc_auc"] = MetricValue.undefined(
            "roc_auc", n, "needs at least two rows and two classes among the labels"
        )
    else:
        out["roc_auc"] = (
            _hanley_mcneil(t == 1, probs[:, 1], n, confidence)
            if binary
            else _bootstrap(
                "roc_auc", lambda ix: _auc(t[ix], probs[ix]), n, confidence, resamples, seed
            )
        )
    if (t == -1).any():
        out["log_loss"] = MetricValue.undefined("log_loss", n, "labels outside the scored classes")
    else:
        loss = _row_log_loss(t, probs)
        out["log_loss"] = _bootstrap(
            "log_loss", _Rowwise(lambda ix: loss[ix].mean(axis=-1)), n, confidence, resamples, seed
        )
    out["ece"] = _bootstrap("ece", _ece_of(t, probs, ece_bins), n, confidence, resamples, seed)
    return out


def _encoded(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    proba: Any,
    classes: Sequence[Any] | None,
    positive: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Labels and predictions as class indices (-1 for a class outside ``classes``), rows
    missing either dropped, with the matching rows of the probability matrix and the number
    of classes. Binary problems put ``positive`` (default: the last class) at index 1."""
    truth = canonical_labels(y_true)
    pred = canonical_labels(y_pred)
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} labels but {len(pred)} predictions")
    keep = np.array(
        [t is not None and p is not None for t, p in zip(truth, pred, strict=True)], dtype=bool
    )
    if classes is None:
        classes = sorted(
            {t for t, k in zip(truth, keep, strict=True) if k}
            | {p for p, k in zip(pred, keep, strict=True) if k},
            key=label_sort_key,
        )
    class_list = [canonical_label(c) for c in classes]
    if positive is not None:
        pos = canonical_label(positive)
        if pos in class_list and len(class_list) == 2:
            class_list = [c for c in class_list if c != pos] + [pos]
    probs = proba_matrix(proba, class_list) if proba is not None else None
    if probs is not None:
        probs = probs[keep]
    index = {c: i for i, c in enumerate(class_list)}
    t = np.array([index.get(v, -1) for v, k in zip(truth, keep, strict=True) if k], dtype=int)
    p = np.array([index.get(v, -1) for v, k in zip(pred, keep, strict=True) if k], dtype=int)
    return t, p, probs, len(class_list)


def classification_spreads(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    proba: Any = None,
    classes: Sequence[Any] | None = None,
    positive: Any = None,
    resamples: int = 100,
    seed: int = 0,
) -> dict[str, MetricSpread]:
    """Reference level and chunk spread of accuracy and (with scores) ROC AUC.

    >>> rng = np.random.default_rng(0)
    >>> score = rng.random(4000)
    >>> y = (rng.random(4000) < score).astype(int)
    >>> spreads = classification_spreads(y, (score > .5).astype(int), proba=score)
    >>> sorted(spreads), round(spreads["accuracy"].std(1000), 2)
    (['accuracy', 'roc_auc'], 0.01)
    """
    t, p, probs, _ = _encoded(y_true, y_pred, proba, classes, positive)
    right = t == p
    out = {}
    accuracy = reference_spread(
        "accuracy", lambda ix: float(right[ix].mean()), len(t), resamples, seed
    )
    if accuracy is not None:
        out["accuracy"] = accuracy
    if probs is not None and not (t == -1).any():
        auc = reference_spread(
            "roc_auc", lambda ix: _auc(t[ix], probs[ix]), len(t), resamples, seed
        )
        if auc is not None:
            out["roc_auc"] = auc
    return out


def regression_spreads(
    y_true: Sequence[Any], y_pred: Sequence[Any], resamples: int = 100, seed: int = 0
) -> dict[str, MetricSpread]:
    """Reference level and chunk spread of RMSE and MAE."""
    err = to_float_array(y_true) - to_float_array(y_pred)
    err = err[np.isfinite(err)]
    out = {}
    for name, statistic in (
        ("rmse", lambda ix: float(np.sqrt(np.mean(err[ix] ** 2)))),
        ("mae", lambda ix: float(np.mean(np.abs(err[ix])))),
    ):
        spread = reference_spread(name, statistic, len(err), resamples, seed)
        if spread is not None:
            out[name] = spread
    return out


def regression_metrics(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    confidence: float = 0.95,
    resamples: int = _DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, MetricValue]:
    """RMSE, MAE and R², each with a percentile bootstrap interval; non-numeric rows dropped."""
    truth = to_float_array(y_true)
    pred = to_float_array(y_pred)
    if len(truth) != len(pred):
        raise ValueError(f"{len(truth)} labels but {len(pred)} predictions")
    keep = np.isfinite(truth) & np.isfinite(pred)
    y, f = truth[keep], pred[keep]
    n = len(y)
    if n == 0:
        return {
            name: MetricValue.undefined(name, 0, "no labelled rows") for name in REGRESSION_METRICS
        }
    err = y - f
    out = {
        "rmse": _bootstrap(
            "rmse",
            _Rowwise(lambda ix: np.sqrt(np.mean(err[ix] ** 2, axis=-1))),
            n,
            confidence,
            resamples,
            seed,
        ),
        "mae": _bootstrap(
            "mae",
            _Rowwise(lambda ix: np.mean(np.abs(err[ix]), axis=-1)),
            n,
            confidence,
            resamples,
            seed,
        ),
    }
    if n < 2 or np.var(y) == 0:
        out["r2"] = MetricValue.undefined("r2", n, "needs at least two distinct labels")
    else:
        out["r2"] = _bootstrap(
            "r2", _Rowwise(lambda ix: _r2(y[ix], f[ix])), n, confidence, resamples, seed
        )
    return out


def to_float_array(values: Sequence[Any]) -> np.ndarray:
    """Values as float64, NaN where missing, boolean or not a number (e.g. \"abc\")."""
    out = np.empty(len(values), dtype=float)
    for i, v in enumerate(values):
        try:
            out[i] = float(v) if v is not None and not isinstance(v, bool) else np.nan
        except (TypeError, ValueError):
            out[i] = np.nan
    return out


def label_sort_key(value: str) -> tuple[int, float, str]:
    """Numeric labels in numeric order, then text labels alphabetically."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _binary_f1(hit: np.ndarray, said: np.ndarray, was: np.ndarray) -> Any:
    """F1 of class 1 along the last axis from each row's true positive, predicted positive
    and actual positive flags; NaN where nothing is positive."""
    tp = np.count_nonzero(hit, axis=-1)
    denom = np.count_nonzero(said, axis=-1) + np.count_nonzero(was, axis=-1)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)


def _macro(t: np.ndarray, p: np.ndarray, k: int, which: str) -> float | None:
    """Macro average over the classes present in labels or predictions (sklearn's convention)."""
    values = []
    for c in range(k):
        tp = float(((p == c) & (t == c)).sum())
        pp, ap = float((p == c).sum()), float((t == c).sum())
        if pp == 0 and ap == 0:
            continue
        precision = tp / pp if pp else 0.0
        recall = tp / ap if ap else 0.0
        if which == "precision":
            values.append(precision)
        elif which == "recall":
            values.append(recall)
        else:
            values.append(2 * tp / (pp + ap))
    return float(np.mean(values)) if values else None


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC as the Mann-Whitney U statistic with mid-ranks for ties."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = stats.rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _hanley_mcneil(
    positive: np.ndarray, score: np.ndarray, n: int, confidence: float
) -> MetricValue:
    """Binary ROC AUC with the Hanley & McNeil (1982, Radiology 143) standard error."""
    auc = _binary_auc(positive, score)
    if auc is None:
        return MetricValue.undefined("roc_auc", n, "needs both classes among the labels")
    n1 = float(positive.sum())
    half = _normal_quantile(0.5 + confidence / 2) * math.sqrt(
        hanley_mcneil_variance(auc, n1, len(positive) - n1)
    )
    return MetricValue(
        "roc_auc", auc, max(0.0, auc - half), min(1.0, auc + half), n, method="hanley_mcneil"
    )


def hanley_mcneil_variance(auc: float, n_pos: float, n_neg: float) -> float:
    """Variance of a ROC AUC over ``n_pos`` positives and ``n_neg`` negatives (Hanley & McNeil,
    1982); the counts may be expected (fractional) counts, as CBPE's are.

    >>> round(hanley_mcneil_variance(0.8, 100, 100) ** 0.5, 4)
    0.0314
    """
    if n_pos <= 0 or n_neg <= 0:
        return 0.0
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (
        n_pos * n_neg
    )
    return max(var, 0.0)


def _auc(t: np.ndarray, probs: np.ndarray) -> float | None:
    if probs.shape[1] == 2:
        return _binary_auc(t == 1, probs[:, 1])
    values = [
        a for c in range(probs.shape[1]) if (a := _binary_auc(t == c, probs[:, c])) is not None
    ]
    return float(np.mean(values)) if values else None


def _row_log_loss(t: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each row's log loss; the metric is their mean."""
    eps = 1e-15
    rows = probs / np.clip(probs.sum(axis=1, keepdims=True), eps, None)
    return np.asarray(-np.log(np.clip(rows[np.arange(len(t)), t], eps, 1.0)))


def _ece_of(t: np.ndarray, probs: np.ndarray, bins: int) -> _Rowwise:
    """Expected calibration error of the top-label confidence (Guo et al., 2017), equal bins,
    as a statistic of row indices: each row's confidence, hit and bin are computed once."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == t).astype(float)
    edges = np.minimum((confidence * bins).astype(int), bins - 1)

    def along_last_axis(ix: np.ndarray) -> Any:
        rows = ix.reshape(-1, ix.shape[-1])
        # Draw r's rows fall in bins r * bins ... r * bins + bins - 1 of one bincount.
        slots = (edges[rows] + bins * np.arange(len(rows))[:, None]).ravel()
        size = len(rows) * bins
        conf_sum = np.bincount(slots, weights=confidence[rows].ravel(), minlength=size)
        acc_sum = np.bincount(slots, weights=correct[rows].ravel(), minlength=size)
        gap = np.abs(conf_sum - acc_sum).reshape(len(rows), bins).sum(axis=1) / ix.shape[-1]
        return gap.reshape(ix.shape[:-1])

    return _Rowwise(along_last_axis)


def _r2(y: np.ndarray, f: np.ndarray) -> Any:
    """R² along the last axis; NaN where the labels do not vary."""
    total = np.sum((y - y.mean(axis=-1, keepdims=True)) ** 2, axis=-1)
    explained = 1.0 - np.sum((y - f) ** 2, axis=-1) / np.where(total == 0, 1.0, total)
    return np.where(total == 0, np.nan, explained)
