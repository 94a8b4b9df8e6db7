"""Prediction drift and prediction collapse, from the profiles of a window and the reference.

- :class:`PredictionDriftDetector`: the distribution of the model's outputs moved. Predicted
  classes are compared with Pearson's chi-square and the Jensen-Shannon distance, numeric outputs
  and the confidence (``score`` / largest ``proba_<class>``) with the binned Kolmogorov-Smirnov
  test and the Wasserstein distance in reference standard deviations - the same statistics and
  the same "significant *and* large" rule as per-feature data drift (``mlwarden.detect.drift``,
  Holm-corrected over the outputs tested), so a million-row window does not alarm on a tiny move.
- :class:`PredictionCollapseDetector`: the model went (near-)constant. One class takes more than
  ``max_share`` of the predictions although the reference gave that class at most
  ``reference_max_share`` (so a model that already answers its majority class 95 % of the time
  may reach 100 % on a quiet day, but one stuck on its minority class is caught); or the spread
  (std) of a numeric output or of the confidence fell below ``std_ratio`` of the reference's,
  scored as the share of the spread lost (``1 - ratio`` against ``1 - std_ratio``) so that,
  like every finding, a larger score is a stronger one. A collapse is reported as prediction
  drift with ``evidence["collapse"] = True``: it is the most severe form of it (the default
  policy answers it with a fallback, at critical severity).

>>> import numpy as np, pandas as pd
>>> from mlwarden.stats.profile import Profile, ProfileLayout
>>> rng = np.random.default_rng(0)
>>> ref = pd.DataFrame({"x": rng.normal(size=2000), "prediction": rng.choice(["no", "yes"], 2000)})
>>> layout = ProfileLayout.fit(ref)
>>> stuck = pd.DataFrame({"x": rng.normal(size=1000), "prediction": ["yes"] * 1000})
>>> [f.statistic for f in PredictionCollapseDetector().detect(
...     Profile.from_data(ref, layout), Profile.from_data(stuck, layout))]
['top_class_share']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlwarden.detect.base import Detector, DetectorContext, Stage, fmt_p, fmt_rows
from mlwarden.detect.registry import register
from mlwarden.detect.statistics import chi_square, holm, js_distance, ks_binned, wasserstein_binned
from mlwarden.domain import Finding, FindingKind
from mlwarden.stats.profile import CategoricalStats, NumericStats, Profile

__all__ = ["PredictionCollapseDetector", "PredictionDriftDetector", "output_signals"]

_ROLES = ("prediction", "score")


@dataclass(frozen=True)
class _Test:
    role: str
    statistic: str
    effect: float
    threshold: float
    p_value: float
    detail: dict[str, float]


@register
class PredictionDriftDetector(Detector):
    """Drift of predicted classes / output values and of confidence against the reference."""

    name = "prediction_drift"
    kind = FindingKind.PREDICTION_DRIFT
    stage = Stage.OUTPUTS
    order = 10
    settings = ("prediction_alpha",)

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], context: DetectorContext
    ) -> PredictionDriftDetector:
        return cls(alpha=settings["prediction_alpha"])

    def __init__(
        self,
        alpha: float = 0.01,
        jensen_shannon: float = 0.1,
        wasserstein: float = 0.1,
        min_rows: int = 30,
    ) -> None:
        self.alpha = alpha
        self.jensen_shannon = jensen_shannon
        self.wasserstein = wasserstein
        self.min_rows = min_rows

    def detect(
        self, reference: Profile, window: Profile, *, window_index: int | None = None
    ) -> list[Finding]:
        tests: list[_Test] = []
        for role in _ROLES:
            ref, win = reference.outputs.get(role), window.outputs.get(role)
            if isinstance(ref, CategoricalStats) and isinstance(win, CategoricalStats):
                if ref.count < self.min_rows or win.count < self.min_rows:
                    continue
                rc = np.append(ref.counts, [ref.other, ref.unseen_count])
                wc = np.append(win.counts, [win.other, win.unseen_count])
                chi2, p = chi_square(rc, wc)
                js = js_distance(rc, wc)
                tests.append(
                    _Test(role, "jensen_shannon", js, self.jensen_shannon, p, {"chi2": chi2})
                )
            elif isinstance(ref, NumericStats) and isinstance(win, NumericStats):
                if ref.count < self.min_rows or win.count < self.min_rows:
                    continue
                ks, p = ks_binned(ref.hist, win.hist)
                w = wasserstein_binned(
                    ref.hist, win.hist, ref.bins.edges, min(ref.min, win.min), max(ref.max, win.max)
                )
                scale = ref.std if ref.std > 0 else max(abs(ref.mean), 1e-12)
                tests.append(
                    _Test(
                        role,
                        "wasserstein",
                        w / scale,
                        self.wasserstein,
                        p,
                        {"ks": ks, "mean_reference": ref.mean, "mean_window": win.mean},
                    )
                )
        findings = []
        adjusted = holm([t.p_value for t in tests])
        for test, p_adj in zip(tests, adjusted, strict=True):
            if p_adj < self.alpha and test.effect >= test.threshold and math.isfinite(test.effect):
                findings.append(self._finding(test, p_adj, reference, window, window_index))
        return findings

    def _finding(
        self, t: _Test, p_adj: float, reference: Profile, window: Profile, window_index: int | None
    ) -> Finding:
        what = "predicted classes" if t.role == "prediction" else "confidence scores"
        if t.role == "prediction" and t.statistic == "wasserstein":
            what = "predicted values"
        shares = ""
        ref_stats, win_stats = reference.outputs[t.role], window.outputs[t.role]
        if isinstance(ref_stats, CategoricalStats) and isinstance(win_stats, CategoricalStats):
            shares = f"; shares {_shares(ref_stats)} -> {_shares(win_stats)}"
        elif "mean_window" in t.detail:
            shares = f"; mean {t.detail['mean_reference']:.4g} -> {t.detail['mean_window']:.4g}"
        return Finding(
            kind=FindingKind.PREDICTION_DRIFT,
            detector=self.name,
            features=[t.role],
            statistic=t.statistic,
            score=float(t.effect),
            threshold=t.threshold,
            p_value=p_adj,
            window=window_index,
            message=(
                f"{what} drifted: {t.statistic.replace('_', '-')} {t.effect:.2f} "
                f"(threshold {t.threshold:g}), {fmt_p(p_adj)} on "
                f"{fmt_rows(window.rows)}{shares}"
            ),
            evidence={
                "output": t.role,
                # what the playbooks' patterns read: a move of the confidence is its own symptom
                # (confidence_collapse), not any output drift
                **({"check": "confidence"} if t.role == "score" else {}),
                **{k: _finite(v) for k, v in t.detail.items()},
            },
        )


@register
class PredictionCollapseDetector(Detector):
    """Constant or near-constant outputs where the reference had a mix."""

    name = "prediction_collapse"
    kind = FindingKind.PREDICTION_DRIFT
    stage = Stage.OUTPUTS
    order = 20
    settings = ("collapse_max_share", "collapse_std_ratio")

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], context: DetectorContext
    ) -> PredictionCollapseDetector:
        return cls(
            max_share=settings["collapse_max_share"], std_ratio=settings["collapse_std_ratio"]
        )

    def __init__(
        self,
        max_share: float = 0.99,
        reference_max_share: float = 0.9,
        std_ratio: float = 0.1,
        min_rows: int = 30,
    ) -> None:
        self.max_share = max_share
        self.reference_max_share = reference_max_share
        self.std_ratio = std_ratio
        self.min_rows = min_rows

    def detect(
        self, reference: Profile, window: Profile, *, window_index: int | None = None
    ) -> list[Finding]:
        findings: list[Finding] = []
        for role in _ROLES:
            ref, win = reference.outputs.get(role), window.outputs.get(role)
            if isinstance(ref, CategoricalStats) and isinstance(win, CategoricalStats):
                if win.count < self.min_rows or ref.count == 0:
                    continue
                win_top = _top(win)
                # the reference's share of the class the window collapsed onto (not of the
                # reference's own top class: on imbalanced data that is always above
                # reference_max_share, and a model stuck on the rare class went unseen)
                before = _share(ref, win_top[0])
                if win_top[1] > self.max_share and before <= self.reference_max_share:
                    findings.append(
                        self._finding(
                            role,
                            "top_class_share",
                            win_top[1],
                            self.max_share,
                            window_index,
                            f"predictions collapsed: {win_top[1]:.1%} of {fmt_rows(win.count)} are "
                            f"{win_top[0]!r} (reference share of that class {before:.1%})",
                            {
                                "class": win_top[0],
                                "reference_share": before,
                                # one answer for every row: a frozen model, not a drift
                                # (not the buckets of levels the reference did not count,
                                # which hold many answers)
                                **(
                                    {"check": "constant"}
                                    if win_top[1] >= 1.0 and not win_top[0].startswith("__")
                                    else {}
                                ),
                            },
                        )
                    )
            elif isinstance(ref, NumericStats) and isinstance(win, NumericStats):
                if win.count < self.min_rows or ref.std <= 0:
                    continue
                ratio = win.std / ref.std
                if ratio < self.std_ratio:
                    what = "predictions" if role == "prediction" else "confidence scores"
                    # scored as the share of the spread lost: the ratio itself falls as the
                    # collapse deepens, and a score below its threshold never counted (the
                    # agent weighs findings by score / threshold)
                    findings.append(
                        self._finding(
                            role,
                            "spread_lost",
                            1.0 - ratio,
                            1.0 - self.std_ratio,
                            window_index,
                            f"{what} collapsed: std {win.std:.3g} is {ratio:.1%} of the "
                            f"reference {ref.std:.3g} on {fmt_rows(win.count)}",
                            {
                                "std": win.std,
                                "reference_std": ref.std,
                                "std_ratio": ratio,
                                "mean": win.mean,
                                # one value for every row (every score identical): frozen
                                **({"check": "constant"} if win.std == 0.0 else {}),
                            },
                        )
                    )
        return findings

    def _finding(
        self,
        role: str,
        statistic: str,
        score: float,
        threshold: float,
        window_index: int | None,
        message: str,
        evidence: dict[str, Any],
    ) -> Finding:
        return Finding(
            kind=FindingKind.PREDICTION_DRIFT,
            detector=self.name,
            features=[role],
            statistic=statistic,
            score=float(score),
            threshold=threshold,
            window=window_index,
            message=message,
            evidence={"collapse": True, "output": role, **evidence},
        )


def output_signals(profile: Profile) -> dict[str, float | None]:
    """Per-window output signals: class shares, mean/std of numeric outputs and confidence."""
    out: dict[str, float | None] = {}
    for role in _ROLES:
        stats = profile.outputs.get(role)
        if isinstance(stats, CategoricalStats):
            total = stats.count
            for name, count in stats.frequencies().items():
                out[f"{role}_share.{name}"] = count / total if total else None
        elif isinstance(stats, NumericStats):
            out[f"{role}_mean"] = stats.mean if stats.count else None
            out[f"{role}_std"] = stats.std if stats.count > 1 else None
    return out


def _share(stats: CategoricalStats, name: str) -> float:
    """The share of ``name`` among the classes counted in ``stats`` (0 when never seen)."""
    freq = stats.frequencies()
    total = sum(freq.values())
    return freq.get(name, 0) / total if total else 0.0


def _top(stats: CategoricalStats) -> tuple[str, float]:
    freq = stats.frequencies()
    total = sum(freq.values())
    if not total:
        return "", 0.0
    name = max(freq, key=lambda k: freq[k])
    return name, freq[name] / total


def _shares(stats: CategoricalStats, top: int = 3) -> str:
    freq = stats.frequencies()
    total = sum(freq.values()) or 1
    items = sorted(freq.items(), key=lambda kv: -kv[1])[:top]
    return "{" + ", ".join(f"{k}: {v / total:.0%}" for k, v in items) + "}"


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0
