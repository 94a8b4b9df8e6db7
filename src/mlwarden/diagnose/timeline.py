"""What changed first: change points in per-window signals, merged with deploy/config events.

Each signal series is compared with its own baseline (the windows before the incident, or
the first third of the series): a window *changes* when it departs from the baseline median
by more than ``max(4 * 1.4826 * MAD, a share of the median, an absolute floor)`` in the harmful
direction — the median/MAD pair is the robust location/scale estimate of Hampel (1974, "The
influence curve and its role in robust estimation", JASA 69:383), so one odd baseline window
does not hide or fake a change.

>>> sig = [{"window": w, "accuracy": 0.9 if w < 5 else 0.7} for w in range(8)]
>>> first_change(sig, "accuracy").window
5
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel

HIGHER_IS_BETTER = (
    "accuracy",
    "f1",
    "auc",
    "roc_auc",
    "precision",
    "recall",
    "r2",
    "balanced_accuracy",
    "estimated_accuracy",
    "ctr",
)
LOWER_IS_BETTER = ("rmse", "mae", "mape", "log_loss", "brier")
DRIFT_STATS = ("psi", "drift", "wasserstein", "js", "jensen_shannon", "ks", "hellinger", "chi2")
RATE_STATS = ("null_rate", "out_of_range_rate", "unseen_rate", "duplicate_rate", "error_rate")

SignalClass = Literal[
    "performance", "latency", "error", "feature_drift", "feature_quality", "other"
]


class Change(BaseModel):
    """The first window where a signal departed from its baseline."""

    signal: str
    window: int
    time: str | None = None
    before: float
    after: float
    worst: float
    feature: str | None = None
    signal_class: SignalClass


class TimelineEntry(BaseModel):
    window: int | None = None
    time: str | None = None
    kind: str
    subject: str
    description: str


def split_signal(name: str) -> tuple[str, str | None]:
    """``"null_rate.vicprice"`` -> ``("null_rate", "vicprice")``; plain names have no feature."""
    stat, sep, feature = name.partition(".")
    return (stat, feature) if sep and feature else (name, None)


def classify(name: str) -> SignalClass:
    stat, feature = split_signal(name)
    stat = stat.lower()
    if feature is not None:
        if stat in RATE_STATS:
            return "feature_quality"
        if any(stat.startswith(d) for d in DRIFT_STATS):
            return "feature_drift"
        return "other"
    if "latency" in stat:
        return "latency"
    if stat in ("error_rate", "errors"):
        return "error"
    if stat in HIGHER_IS_BETTER or stat in LOWER_IS_BETTER:
        return "performance"
    return "other"


def _harm_sign(name: str) -> int:
    """+1 when an increase is harmful, -1 when a decrease is (performance metrics)."""
    stat, _ = split_signal(name)
    return -1 if stat.lower() in HIGHER_IS_BETTER else 1


def _tolerance(name: str, median: float, mad: float) -> float:
    """How far from the baseline median a window must be to count as changed.

    Performance metrics move by points, so their relative slack is small (3%); rates and drift
    statistics start near zero and need an absolute floor; latency is judged relative (25%).
    """
    cls = classify(name)
    rel, floor = {
        "feature_drift": (0.25, 0.1),
        "feature_quality": (0.25, 0.02),
        "error": (0.25, 0.02),
        "performance": (0.03, 0.02),
    }.get(cls, (0.25, 0.0))
    return max(4 * 1.4826 * mad, rel * abs(median), floor)


def _window_of(row: dict[str, Any], i: int) -> int:
    w = row.get("window", i)
    return int(w) if isinstance(w, int | float) else i


def _time_of(row: dict[str, Any]) -> str | None:
    t = row.get("time", row.get("timestamp"))
    if t is None:
        return None
    return t.isoformat() if hasattr(t, "isoformat") else str(t)


def series(signals: Sequence[dict[str, Any]], name: str) -> list[tuple[int, str | None, float]]:
    """``(window, time, value)`` of one signal, ordered by window, skipping missing values."""
    out = []
    for i, row in enumerate(signals):
        v = row.get(name)
        if isinstance(v, int | float) and not isinstance(v, bool) and v == v:
            out.append((_window_of(row, i), _time_of(row), float(v)))
    return sorted(out, key=lambda x: x[0])


def first_change(
    signals: Sequence[dict[str, Any]], name: str, baseline_until: int | None = None
) -> Change | None:
    """The first harmful departure of ``name`` from its baseline, or None."""
    points = series(signals, name)
    if len(points) < 2:
        return None
    base = [v for w, _, v in points if baseline_until is not None and w < baseline_until]
    if not base:
        base = [v for _, _, v in points[: max(1, len(points) // 3)]]
    med = statistics.median(base)
    mad = statistics.median([abs(v - med) for v in base])
    tol = _tolerance(name, med, mad)
    sign = _harm_sign(name)
    start = len(base) if baseline_until is None else 0
    for w, t, v in points[start:]:
        if baseline_until is not None and w < baseline_until:
            continue
        if sign * (v - med) > tol:
            later = [x for ww, _, x in points if ww >= w]
            worst = max(later) if sign > 0 else min(later)
            _, feature = split_signal(name)
            return Change(
                signal=name,
                window=w,
                time=t,
                before=med,
                after=v,
                worst=worst,
                feature=feature,
                signal_class=classify(name),
            )
    return None


def detect_changes(
    signals: Sequence[dict[str, Any]], baseline_until: int | None = None
) -> list[Change]:
    """First change of every signal, ordered by window then signal name."""
    names = sorted({k for row in signals for k in row if k not in ("window", "time", "timestamp")})
    changes = [c for n in names if (c := first_change(signals, n, baseline_until)) is not None]
    return sorted(changes, key=lambda c: (c.window, c.signal))
