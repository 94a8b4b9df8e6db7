"""Concept drift: the model got worse at its job.

Two detectors, one slow and sure, one fast:

- :func:`performance_drop`: a window's metric against the reference value with the window's
  confidence interval. It flags only when the *whole* interval is worse than the reference by
  more than a tolerance (for accuracy: the interval's upper bound is below
  ``reference - tolerance``), so sampling noise of a small window never alarms.
- :class:`StreamingErrorDetector`: a change detector on the per-record error stream (0/1 for
  classification, absolute error for regression) from River: ADWIN (Bifet & Gavaldà, 2007,
  "Learning from time-changing data with adaptive windowing", SDM), Page-Hinkley (Page, 1954,
  "Continuous inspection schemes", Biometrika). Only *increases* of the error are reported.

- :func:`estimated_drop`: before labels, the CBPE estimate of a window's metric against the
  reference's chunk-to-chunk spread at the window's size: flagged below ``level - 3 std``, the
  band NannyML draws around its reference chunks, so the reference period itself never alarms.

Whether a drop is concept drift (inputs stable) or data drift with impact (inputs moved) is the
engine's call, because only it sees both (:func:`attribute_drop`).

>>> from mlwarden.stats.performance import MetricValue
>>> ref = MetricValue("accuracy", 0.90, 0.89, 0.91, 5000)
>>> win = MetricValue("accuracy", 0.70, 0.67, 0.73, 1000)
>>> performance_drop("accuracy", ref, win, tolerance=0.02, window_index=4).statistic
'accuracy_drop'
>>> performance_drop("accuracy", ref, MetricValue("accuracy", .88, .86, .90, 1000), 0.02) is None
True
>>> from mlwarden.stats.performance import MetricSpread
>>> spread = MetricSpread("accuracy", 0.90, 0.30)      # std 0.01 at 900 rows
>>> estimated_drop(spread, MetricValue("accuracy", 0.86, 0.84, 0.88, 900)).evidence["estimated"]
True
>>> estimated_drop(spread, MetricValue("accuracy", 0.88, 0.86, 0.90, 900)) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mlwarden.detect.tolerance import DEFAULT_TOLERANCE, RELATIVE_TOLERANCE
from mlwarden.domain import Finding, FindingKind
from mlwarden.stats.performance import HIGHER_IS_BETTER, MetricSpread, MetricValue

# How many records before the detection point the change is assumed to have started.
_DETECTION_LAG = 50

__all__ = [
    "StreamingErrorDetector",
    "StreamingResult",
    "attribute_drop",
    "beyond_estimate",
    "estimated_drop",
    "performance_drop",
]


def performance_drop(
    metric: str,
    reference: MetricValue,
    window: MetricValue,
    tolerance: float | None = None,
    window_index: int | None = None,
) -> Finding | None:
    """A finding when the window's interval lies entirely beyond ``reference -/+ tolerance``."""
    index = window_index
    tol = DEFAULT_TOLERANCE.get(metric, 0.02) if tolerance is None else tolerance
    if reference.value is None or window.value is None:
        return None
    if metric in RELATIVE_TOLERANCE:
        tol = tol * abs(reference.value)
    higher = metric in HIGHER_IS_BETTER
    if higher:
        bound = window.ci_high if window.ci_high is not None else window.value
        limit = reference.value - tol
        dropped = bound < limit
        drop = reference.value - window.value
    else:
        bound = window.ci_low if window.ci_low is not None else window.value
        limit = reference.value + tol
        dropped = bound > limit
        drop = window.value - reference.value
    if not dropped:
        return None
    side = "upper" if higher else "lower"
    return Finding(
        kind=FindingKind.CONCEPT_DRIFT,
        detector="concept.performance_drop",
        statistic=f"{metric}_drop",
        score=float(drop),
        threshold=float(tol),
        window=index,
        message=(
            f"{metric} fell from {reference.value:.3f} to {window.value:.3f} "
            f"({side} CI bound {bound:.3f} beyond {limit:.3f}, n={window.n})"
        ),
        # performance_drop is what the agent's severity rules read: metric points for scores,
        # a relative increase for errors (RMSE 10 -> 12 is a 0.2 drop)
        evidence={
            "metric": metric,
            "reference": reference.value,
            "value": window.value,
            "ci_low": window.ci_low,
            "ci_high": window.ci_high,
            "n": window.n,
            "inputs_stable": None,
            "performance_drop": float(drop if higher else drop / max(abs(reference.value), 1e-12)),
        },
    )


def estimated_drop(
    spread: MetricSpread, window: MetricValue, sigmas: float = 3.0, window_index: int | None = None
) -> Finding | None:
    """A finding when a window's estimated metric lies beyond ``sigmas`` reference chunk
    standard deviations (at the window's size) on the worse side of the reference level."""
    if window.value is None or window.n <= 0:
        return None
    metric = spread.name
    higher = metric in HIGHER_IS_BETTER
    limit = spread.lower(window.n, sigmas) if higher else spread.upper(window.n, sigmas)
    if (window.value >= limit) if higher else (window.value <= limit):
        return None
    drop = (spread.level - window.value) if higher else (window.value - spread.level)
    return Finding(
        kind=FindingKind.CONCEPT_DRIFT,
        detector="concept.estimated_drop",
        statistic=f"estimated_{metric}_drop",
        score=float(drop),
        threshold=float(abs(spread.level - limit)),
        window=window_index,
        message=(
            f"estimated {metric} (CBPE, no labels yet) fell from {spread.level:.3f} to "
            f"{window.value:.3f}, beyond the reference band's "
            f"{'lower' if higher else 'upper'} limit {limit:.3f} (n={window.n})"
        ),
        evidence={
            "metric": metric,
            "reference": spread.level,
            "value": window.value,
            "ci_low": window.ci_low,
            "ci_high": window.ci_high,
            "n": window.n,
            "estimated": True,
            "limit": limit,
            "sigmas": sigmas,
            "inputs_stable": None,
            "performance_drop": float(drop if higher else drop / max(abs(spread.level), 1e-12)),
        },
    )


@dataclass(frozen=True)
class StreamingResult:
    """What the streaming detector saw in one batch: change positions and error levels."""

    changes: list[int]
    error_before: float | None
    error_after: float | None
    n: int


class StreamingErrorDetector:
    """River change detector on the per-record error; remembers its state across windows.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = StreamingErrorDetector("adwin")
    >>> det.update(rng.random(2000) < 0.1).changes
    []
    >>> det.update(rng.random(2000) < 0.4).changes != []
    True
    """

    def __init__(
        self,
        method: Literal["adwin", "page_hinkley"] = "adwin",
        delta: float | None = None,
        min_increase: float = 0.05,
    ) -> None:
        from river import drift

        self.method = method
        self.min_increase = min_increase
        if method == "adwin":
            # River's default delta (0.002) gives a few false changes per 100k clean records;
            # 1e-4 keeps the clean-stream alarm rate under the 1-in-100-windows budget.
            self._detector: Any = drift.ADWIN(delta=delta if delta is not None else 1e-4)
        elif method == "page_hinkley":
            self._detector = drift.PageHinkley(
                mode="up", delta=delta if delta is not None else 0.005
            )
        else:
            raise ValueError(f"unknown streaming detector {method!r}")
        self._level = _RunningMean()

    def update(self, errors: Iterable[Any]) -> StreamingResult:
        """Feed one batch of per-record errors; return the positions (in it) of error increases.

        The detector says *that* the stream changed; whether the error went up is decided by
        comparing the mean error since the previous change with the mean in the batch from
        shortly before the detection point on (detectors fire a few dozen records late).
        """
        values = np.asarray([float(e) for e in errors], dtype=float)
        values = values[np.isfinite(values)]
        changes: list[int] = []
        before = self._level.mean
        for i, value in enumerate(values):
            self._detector.update(value)
            if self._detector.drift_detected:
                changes.append(i)
        after = float(values.mean()) if len(values) else None
        increases: list[int] = []
        if changes:
            start = max(0, changes[0] - _DETECTION_LAG)
            pre = _RunningMean()
            pre.total, pre.count = self._level.total, self._level.count
            for value in values[:start]:
                pre.add(value)
            before = pre.mean
            after = float(values[start:].mean())
            if before is not None and after - before >= self.min_increase:
                increases = changes
            self._level = _RunningMean()
            for value in values[start:]:
                self._level.add(value)
        else:
            for value in values:
                self._level.add(value)
        return StreamingResult(
            changes=increases, error_before=before, error_after=after, n=len(values)
        )

    def finding(self, result: StreamingResult, window: int | None = None) -> Finding | None:
        """A concept-drift finding for a batch in which the error level went up."""
        if not result.changes or result.error_before is None or result.error_after is None:
            return None
        increase = result.error_after - result.error_before
        if increase < self.min_increase:
            return None
        return Finding(
            kind=FindingKind.CONCEPT_DRIFT,
            detector=f"concept.{self.method}",
            statistic="error_increase",
            score=float(increase),
            threshold=self.min_increase,
            window=window,
            message=(
                f"{self.method.upper()} saw the per-record error rise from "
                f"{result.error_before:.3f} to {result.error_after:.3f} "
                f"(change at record {result.changes[0]} of {result.n})"
            ),
            evidence={
                "changes": result.changes[:10],
                "error_before": result.error_before,
                "error_after": result.error_after,
                "inputs_stable": None,
            },
        )


class _RunningMean:
    """Mean error since the last change."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1


def beyond_estimate(
    measured: MetricValue | None, estimate: MetricValue | None, tolerance: float = 0.02
) -> dict[str, Any] | None:
    """The labels disagree with the model beyond what its inputs explain, or None.

    CBPE (``monitor.estimate``) scores what the model's own calibrated confidence on *these*
    inputs predicts, so a drop that moved inputs cause (covariate shift, same relation) shows in
    the estimate as well. When the measured metric's interval lies wholly beyond the estimate's,
    by more than ``tolerance``, the relation between inputs and labels changed (concept drift),
    or the model is not the one that was calibrated (a bad deploy), whatever the inputs did.

    >>> est = MetricValue("accuracy", 0.70, 0.68, 0.72, 1000)
    >>> beyond_estimate(MetricValue("accuracy", 0.52, 0.49, 0.55, 1000), est)["gap"]
    0.18
    >>> beyond_estimate(MetricValue("accuracy", 0.66, 0.63, 0.69, 1000), est) is None
    True
    """
    if measured is None or estimate is None or measured.value is None or estimate.value is None:
        return None
    higher = measured.name in HIGHER_IS_BETTER
    sign = 1.0 if higher else -1.0
    measured_best = measured.ci_high if higher else measured.ci_low
    estimate_worst = estimate.ci_low if higher else estimate.ci_high
    if measured_best is None or estimate_worst is None:
        return None
    gap = sign * (estimate.value - measured.value)
    if sign * (estimate_worst - measured_best) <= 0 or gap <= tolerance:
        return None
    return {
        "metric": measured.name,
        "estimated": estimate.value,
        "measured": measured.value,
        "gap": round(float(gap), 4),
    }


def attribute_drop(
    drop: Finding, data_findings: list[Finding], unexplained: dict[str, Any] | None = None
) -> Finding:
    """Concept drift when inputs stayed stable, or when they moved but the labels disagree with
    the model beyond what the move explains (``unexplained``, see :func:`beyond_estimate`);
    data drift with impact otherwise. Real inputs drift all the time: without the second test
    a concept change or a bad model on a drifting stream was always called data drift.

    ``data_findings`` are the window's data-drift and data-quality findings. The returned
    finding keeps the drop's numbers and says in ``evidence`` which it is and what moved. A drop
    beside a data-quality break stays data drift with impact: broken inputs explain it.
    """
    moved = sorted({f for finding in data_findings for f in _named_features(finding)})
    evidence = dict(drop.evidence)
    if not data_findings:
        evidence["inputs_stable"] = True
        return drop.model_copy(
            update={"evidence": evidence, "message": drop.message + "; inputs stayed stable"}
        )
    evidence["inputs_stable"] = False
    evidence["moved_features"] = moved
    shown = ", ".join(moved[:5]) + (" …" if len(moved) > 5 else "")
    broken = any(f.kind is FindingKind.DATA_QUALITY for f in data_findings)
    if unexplained is not None and not broken and not evidence.get("estimated"):
        evidence["unexplained"] = unexplained
        evidence["check"] = "unexplained_by_inputs"  # what playbooks match on
        return drop.model_copy(
            update={
                "evidence": evidence,
                "message": drop.message
                + (
                    f"; inputs moved ({shown}), but on them the model's own confidence "
                    f"predicts {unexplained['metric']} {unexplained['estimated']:.3f} (CBPE), "
                    f"not the measured {unexplained['measured']:.3f}: the labels disagree with "
                    "the model beyond what the move explains"
                ),
            }
        )
    evidence["impact"] = {
        "metric": evidence.get("metric", "error"),
        "drop": drop.score,
        "reference": evidence.get("reference", evidence.get("error_before")),
        "value": evidence.get("value", evidence.get("error_after")),
    }
    return drop.model_copy(
        update={
            "kind": FindingKind.DATA_DRIFT,
            "features": moved,
            "evidence": evidence,
            "message": drop.message + f"; inputs moved ({shown}): data drift with impact",
        }
    )


def _named_features(finding: Finding) -> list[str]:
    """The features a data finding blames; a domain classifier names every feature it was
    given, so its three most separating ones (``evidence["feature_auc"]``) stand for it."""
    auc = finding.evidence.get("feature_auc")
    if isinstance(auc, dict) and auc:
        return sorted(auc, key=lambda k: -float(auc[k]))[:3]
    return list(finding.features)
