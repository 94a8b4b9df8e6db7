"""Drift of free-text features: their length, their share of unknown words, their word mix.

A text feature (``FeatureType.TEXT``, summarised by ``stats.text.TextStats``) is compared with
the reference in three language-free ways, each a ``data_drift`` finding naming the feature and,
in ``evidence["check"]``, what moved:

* ``text_length``: the distribution of lengths (characters) on the reference's length bins,
  decided as a numeric feature's drift is (KS on the bins, and Wasserstein in reference
  standard deviations or PSI past its threshold): names cut short, comments that grew.
* ``text_oov``: the share of tokens outside the reference's vocabulary rose by at least
  ``oov_increase`` (absolute) over the reference's own out-of-sample rate: another language,
  garbage, a field filled from another source. The test is one-sided and counts rows, not
  tokens (the tokens of one value are not independent draws), so it is conservative.
* ``text_tokens``: the mix of the reference's most frequent tokens (and the other known ones)
  moved: Jensen-Shannon distance past ``jensen_shannon`` and a chi-square test on rows' worth of
  tokens. Unknown tokens are left out of this mix (``text_oov`` judges those).

p-values of every check of every text feature are adjusted together (Holm).

>>> import pandas as pd
>>> from mlwarden.datasets import load
>>> from mlwarden.stats.profile import Profile
>>> names = load("titanic")[["Name"]]
>>> reference = Profile.reference(names.iloc[:600])
>>> shouting = names.iloc[600:].assign(Name=lambda d: "XQJ " + d["Name"].str.upper() + " ZZT")
>>> found = TextDriftDetector().detect(reference, Profile.from_data(shouting, reference.layout))
>>> sorted(f.evidence["check"] for f in found)
['text_length', 'text_oov']
>>> TextDriftDetector().detect(reference, Profile.from_data(names.iloc[600:], reference.layout))
[]

Shouting changes no word's share (tokens are lower-cased): the mix is tested on known words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from mlwarden.detect.base import Detector, DetectorContext, DetectorOutput, WindowInputs, fmt_p
from mlwarden.detect.registry import register
from mlwarden.detect.statistics import (
    chi_square,
    holm,
    js_distance,
    ks_binned,
    psi,
    wasserstein_binned,
)
from mlwarden.domain import Finding, FindingKind
from mlwarden.stats.profile import Profile
from mlwarden.stats.text import TextStats

__all__ = ["TextDriftDetector"]


@dataclass
class _Check:
    """One test of one text feature, before the p-values are adjusted together."""

    feature: str
    check: str
    statistic: str
    effect: float
    threshold: float
    p_value: float
    message: str
    evidence: dict[str, Any]

    @property
    def effect_passed(self) -> bool:
        return self.effect >= self.threshold


@register
class TextDriftDetector(Detector):
    """Length, out-of-vocabulary and token-mix drift of every text feature."""

    name = "text_drift"
    kind = FindingKind.DATA_DRIFT
    order = 12  # beside feature_drift, before the domain classifier and data quality
    settings = ("drift_alpha", "drift_wasserstein", "drift_psi", "drift_jensen_shannon")

    def __init__(
        self,
        alpha: float = 0.01,
        wasserstein: float = 0.1,
        psi: float = 0.2,
        jensen_shannon: float = 0.1,
        oov_increase: float = 0.1,
        min_rows: int = 30,
    ) -> None:
        self.alpha = alpha
        self.wasserstein = wasserstein
        self.psi = psi
        self.jensen_shannon = jensen_shannon
        self.oov_increase = oov_increase
        self.min_rows = min_rows

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], context: DetectorContext
    ) -> TextDriftDetector:
        return cls(
            alpha=settings["drift_alpha"],
            wasserstein=settings["drift_wasserstein"],
            psi=settings["drift_psi"],
            jensen_shannon=settings["drift_jensen_shannon"],
        )

    def run(self, inputs: WindowInputs) -> DetectorOutput:
        """Findings, and per text feature its mean length and OOV rate as signals."""
        signals: dict[str, Any] = {}
        for name, win in inputs.window.features.items():
            if isinstance(win, TextStats) and win.count:
                signals[f"text_length.{name}"] = win.mean_length
                signals[f"text_oov.{name}"] = win.oov_rate
        findings = self.detect(inputs.reference, inputs.window, window_index=inputs.index)
        return DetectorOutput(findings, signals)

    def detect(
        self, reference: Profile, window: Profile, *, window_index: int | None = None
    ) -> list[Finding]:
        checks: list[_Check] = []
        for name, win in window.features.items():
            ref = reference.features.get(name)
            if not (isinstance(ref, TextStats) and isinstance(win, TextStats)):
                continue
            if ref.count < self.min_rows or win.count < self.min_rows:
                continue
            checks += [c for c in (self._length(name, ref, win), self._oov(name, ref, win)) if c]
            tokens = self._tokens(name, ref, win)
            if tokens is not None:
                checks.append(tokens)
        adjusted = holm([c.p_value for c in checks])
        return [
            self._finding(c, p, window_index)
            for c, p in zip(checks, adjusted, strict=True)
            if p < self.alpha and c.effect_passed
        ]

    def _length(self, name: str, ref: TextStats, win: TextStats) -> _Check | None:
        edges = ref.layout.length_edges
        if edges.size == 0:
            return None
        ks, p = ks_binned(ref.length_hist, win.length_hist)
        lo, hi = min(ref.length_min, win.length_min), max(ref.length_max, win.length_max)
        w = wasserstein_binned(ref.length_hist, win.length_hist, edges, lo, hi)
        w_std = w / (ref.std_length or 1.0)
        shift = psi(ref.length_hist, win.length_hist)
        w_std, shift = (v if math.isfinite(v) else 0.0 for v in (w_std, shift))
        if w_std / self.wasserstein >= shift / self.psi:
            statistic, effect, threshold = "text_length_wasserstein", w_std, self.wasserstein
        else:
            statistic, effect, threshold = "text_length_psi", shift, self.psi
        message = (
            f"{name}: the text's length changed: {ref.mean_length:.0f} characters on average in "
            f"the reference, {win.mean_length:.0f} now (Wasserstein {w_std:.2f} std, "
            f"PSI {shift:.2f}, KS {ks:.2f})"
        )
        evidence = {
            "mean_length_reference": ref.mean_length,
            "mean_length_window": win.mean_length,
            "wasserstein_std": w_std,
            "psi": shift,
            "ks": ks,
        }
        return _Check(name, "text_length", statistic, effect, threshold, p, message, evidence)

    def _oov(self, name: str, ref: TextStats, win: TextStats) -> _Check | None:
        if not ref.checked or not win.checked:
            return None
        p_ref, p_win = ref.oov_rate, win.oov_rate
        # rows, not tokens, are the independent draws: the standard error on the row counts
        pooled = min(
            max((p_ref * ref.count + p_win * win.count) / (ref.count + win.count), 1e-6), 1 - 1e-6
        )
        se = math.sqrt(pooled * (1 - pooled) * (1 / ref.count + 1 / win.count))
        p = float(stats.norm.sf((p_win - p_ref) / se))
        message = (
            f"{name}: {p_win:.0%} of its words are unknown to the reference vocabulary, against "
            f"{p_ref:.0%} in the reference (another language, garbage, or another source)"
        )
        evidence = {"oov_rate": p_win, "reference_oov_rate": p_ref, "tokens": win.checked}
        return _Check(
            name,
            "text_oov",
            "oov_rate_increase",
            p_win - p_ref,
            self.oov_increase,
            p,
            message,
            evidence,
        )

    def _tokens(self, name: str, ref: TextStats, win: TextStats) -> _Check | None:
        ref_counts, win_counts = ref.token_counts(), win.token_counts()
        if ref_counts.sum() < self.min_rows or win_counts.sum() < self.min_rows:
            return None
        # the tokens of one row move together: tested on rows' worth of tokens
        per_row = max(win.checked / max(win.count, 1), ref.checked / max(ref.count // 2, 1), 1.0)
        _, p = chi_square(ref_counts / per_row, win_counts / per_row)
        js = js_distance(ref_counts, win_counts)
        moved = _moved_tokens(ref, win)
        message = (
            f"{name}: the mix of its most common words changed (Jensen-Shannon {js:.2f}): {moved}"
        )
        evidence = {"jensen_shannon": js, "top_tokens": dict(win.top_shares())}
        return _Check(
            name,
            "text_tokens",
            "token_jensen_shannon",
            js,
            self.jensen_shannon,
            p,
            message,
            evidence,
        )

    def _finding(self, c: _Check, p_adjusted: float, window_index: int | None) -> Finding:
        return Finding(
            kind=FindingKind.DATA_DRIFT,
            detector=self.name,
            features=[c.feature],
            statistic=c.statistic,
            score=float(c.effect),
            threshold=float(c.threshold),
            p_value=p_adjusted,
            window=window_index,
            message=f"{c.message}; {fmt_p(p_adjusted)} (Holm)",
            evidence={"check": c.check, "type": "text", **c.evidence},
        )


def _moved_tokens(ref: TextStats, win: TextStats, n: int = 3) -> str:
    """The counted tokens whose shares moved most, as "'mr' 14% -> 2%"."""
    ref_share = ref.top / max(ref.checked - ref.oov, 1)
    win_share = win.top / max(win.checked - win.oov, 1)
    order = np.argsort(-np.abs(win_share - ref_share), kind="stable")[:n]
    return ", ".join(
        f"{ref.layout.top[i]!r} {ref_share[i]:.0%} -> {win_share[i]:.0%}" for i in order
    )
