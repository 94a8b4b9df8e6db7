"""Multivariate drift with a domain classifier: can a model tell the window from the reference?

Method: label reference rows 0 and window rows 1, fit a gradient-boosted tree classifier
(scikit-learn's ``HistGradientBoostingClassifier``) with stratified k-fold cross-validation, and
measure the ROC AUC of the out-of-fold scores. If the two samples come from the same joint
distribution no model can separate them and the AUC stays near 0.5; a change in the joint
distribution - e.g. a correlation that appears while every marginal stays the same - is found by
the trees' interactions even though no per-feature test sees it. Sources: Lipton, Wang & Smola,
"Detecting and Correcting for Label Shift with Black Box Predictors" (ICML 2018) and Rabanser,
Günnemann & Lipton, "Failing Loudly: An Empirical Study of Methods for Detecting Dataset Shift"
(NeurIPS 2019), where the domain classifier is one of the strongest multivariate detectors.

Decision (both must hold):
* significance: out-of-fold scores are independent of the domain labels under no change, so
  the AUC is the Mann-Whitney U statistic of those scores and its one-sided p-value is exact
  enough (Hanley & McNeil, Radiology 1982) - no costly permutation refits. ``alpha = 0.01``.
* effect: AUC >= 0.55 (default margin). Two clean samples of 1,000 rows give an AUC within
  +-0.04 of 0.5 about 99 % of the time; 0.55 keeps a tiny but "significant" separation on big
  samples from alarming.

It needs raw rows, not profiles: pass the reference sample (training rows, or
``ReferenceBuilder.sample``) and the window's rows; both are capped at ``max_rows`` by a seeded
random sample, so the cost does not grow with the window.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> ref = pd.DataFrame(rng.normal(size=(2000, 2)), columns=["a", "b"])
>>> cov = [[1.0, 0.9], [0.9, 1.0]]
>>> win = pd.DataFrame(rng.multivariate_normal([0, 0], cov, 1000), columns=["a", "b"])
>>> result = DomainClassifierDetector().compare(ref, win)
>>> result.drifted, result.auc > 0.6
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from mlwarden.detect.base import (
    Detector,
    DetectorContext,
    DetectorOutput,
    Input,
    WindowInputs,
    fmt_p,
    fmt_rows,
)
from mlwarden.detect.registry import register
from mlwarden.domain import FeatureType, Finding, FindingKind, ModelSpec
from mlwarden.errors import InvalidInput
from mlwarden.stats.profile import DataLike, _as_float, _infer_type
from mlwarden.stats.reference import to_pandas

__all__ = ["DomainClassifierDetector", "DomainClassifierResult", "MomentScreen"]


@dataclass
class DomainClassifierResult:
    """AUC of reference-vs-window classification, its p-value and the verdict."""

    status: str  # "drift", "stable" or "insufficient_data"
    auc: float
    p_value: float
    threshold: float
    n_reference: int
    n_window: int
    features: list[str]
    importance: dict[str, float] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return self.status == "drift"


@register
class DomainClassifierDetector(Detector):
    """Reference-vs-window classifier on raw rows (capped samples); see the module docstring.

    In the monitor (:meth:`run`) it runs only when it has something to add: not when the
    per-feature tests already found drift on the window, and, with a ``screen_below`` p-value,
    only when the :class:`MomentScreen` sees the means or covariances move.
    """

    name = "domain_classifier"
    kind = FindingKind.DATA_DRIFT
    order = 20
    needs = frozenset({Input.SAMPLES, Input.EARLIER_FINDINGS})
    settings = ("multivariate", "multivariate_auc", "multivariate_screen")

    def __init__(
        self,
        *,
        max_rows: int = 2000,
        folds: int = 3,
        auc_threshold: float = 0.55,
        alpha: float = 0.01,
        min_rows: int = 50,
        seed: int = 0,
        reference_sample: pd.DataFrame | None = None,
        screen_below: float | None = None,
    ) -> None:
        if folds < 2:
            raise InvalidInput("folds must be at least 2")
        if not 0.5 <= auc_threshold < 1.0:
            raise InvalidInput("auc_threshold must be in [0.5, 1)")
        self.max_rows = max_rows
        self.folds = folds
        self.auc_threshold = auc_threshold
        self.alpha = alpha
        self.min_rows = min_rows
        self.seed = seed
        self.reference_sample = reference_sample
        self.screen_below = screen_below
        self.screen = (
            MomentScreen(reference_sample, list(reference_sample.columns))
            if reference_sample is not None and screen_below is not None
            else None
        )

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], context: DetectorContext
    ) -> DomainClassifierDetector | None:
        if not settings["multivariate"] or context.reference_sample is None:
            return None
        return cls(
            auc_threshold=settings["multivariate_auc"],
            reference_sample=_without_text(context.reference_sample, context.spec),
            screen_below=settings["multivariate_screen"],
        )

    def run(self, inputs: WindowInputs) -> DetectorOutput:
        sample, window = self.reference_sample, inputs.window_frame
        if sample is None or window is None or not self._joint_change_possible(inputs):
            return DetectorOutput([])
        return DetectorOutput(
            self.detect_samples(
                sample, window, features=list(sample.columns), window_index=inputs.index
            )
        )

    def _joint_change_possible(self, inputs: WindowInputs) -> bool:
        """Whether the classifier has anything to add on this window: it looks for a joint
        change the per-feature tests miss, so not when they already found drift, and not when
        the window's means and covariances match the reference's (the screen)."""
        if self.screen is None:
            return True
        if any(f.kind is FindingKind.DATA_DRIFT for f in inputs.earlier_findings):
            return False
        try:
            return self.screen.p_value(inputs.window_frame) < float(self.screen_below or 0)
        except Exception:  # the screen failing on odd data must not hide the classifier
            return True

    def compare(
        self, reference: DataLike, window: DataLike, features: Sequence[str] | None = None
    ) -> DomainClassifierResult:
        ref = to_pandas(reference)
        win = to_pandas(window)
        names = list(features) if features is not None else [c for c in ref.columns if c in win]
        names = [str(n) for n in names if n in ref.columns]
        if not names:
            raise InvalidInput("the reference and the window share no feature column")
        rng = np.random.default_rng(self.seed)
        ref = _cap(ref, self.max_rows, rng)
        win = _cap(win, self.max_rows, rng)
        if len(ref) < self.min_rows or len(win) < self.min_rows:
            return DomainClassifierResult(
                "insufficient_data", 0.5, 1.0, self.auc_threshold, len(ref), len(win), names
            )
        x = _encode(ref, win, names)
        y = np.concatenate([np.zeros(len(ref), dtype=int), np.ones(len(win), dtype=int)])
        folds = min(self.folds, len(ref), len(win))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.seed)
        # One thread: on shared small machines OpenMP's default of one thread per core makes a
        # fit of a few thousand rows 20x slower when other processes compete for the cores.
        with threadpool_limits(limits=1, user_api="openmp"):
            oof = self._out_of_fold(x, y, splitter)
        u = stats.mannwhitneyu(oof[y == 1], oof[y == 0], alternative="greater")
        auc = float(u.statistic) / (len(win) * len(ref))
        p = float(u.pvalue) if np.isfinite(u.pvalue) else 1.0
        status = "drift" if auc >= self.auc_threshold and p < self.alpha else "stable"
        importance = _univariate_auc(x, y, names) if status == "drift" else {}
        return DomainClassifierResult(
            status, auc, p, self.auc_threshold, len(ref), len(win), names, importance
        )

    def _out_of_fold(self, x: np.ndarray, y: np.ndarray, splitter: StratifiedKFold) -> np.ndarray:
        oof = np.zeros(len(y))
        for train, test in splitter.split(x, y):
            model = HistGradientBoostingClassifier(
                max_iter=60,
                learning_rate=0.1,
                max_leaf_nodes=15,
                min_samples_leaf=20,
                random_state=self.seed,
            )
            model.fit(x[train], y[train])
            oof[test] = model.predict_proba(x[test])[:, 1]
        return oof

    def detect_samples(
        self,
        reference: DataLike,
        window: DataLike,
        *,
        features: Sequence[str] | None = None,
        window_index: int | None = None,
    ) -> list[Finding]:
        """A ``data_drift`` finding when the joint distribution changed, else nothing."""
        r = self.compare(reference, window, features)
        if not r.drifted:
            return []
        top = sorted(r.importance.items(), key=lambda kv: -kv[1])[:3]
        marginals = ", ".join(f"{k} {v:.2f}" for k, v in top)
        return [
            Finding(
                kind=FindingKind.DATA_DRIFT,
                detector=self.name,
                features=r.features,
                statistic="domain_auc",
                score=r.auc,
                threshold=r.threshold,
                p_value=r.p_value,
                window=window_index,
                message=(
                    f"joint distribution of {len(r.features)} features changed: a classifier "
                    f"tells window from reference with AUC {r.auc:.3f} (threshold "
                    f"{r.threshold:g}, {fmt_p(r.p_value)}) on {fmt_rows(r.n_window)} vs "
                    f"{fmt_rows(r.n_reference)}; best single feature AUC: {marginals}"
                ),
                evidence={
                    "check": "domain_classifier",
                    "auc": r.auc,
                    "n_reference": r.n_reference,
                    "n_window": r.n_window,
                    "feature_auc": r.importance,
                },
            )
        ]


class MomentScreen:
    """A cheap screen before the domain classifier: did the window's means or covariances move?

    Fit once on the reference rows (encoded as the classifier sees them, standardized by the
    reference's mean and standard deviation; a missing value counts as the mean). For a window
    it compares the mean of every standardized feature z_i and of every product z_i * z_j
    (i <= j: variances and covariances) with the reference's, each as a z-score over the
    standard error of both means, and returns the Bonferroni p-value of the largest. It costs a
    matrix product per window instead of three tree ensembles.

    It only decides whether the classifier needs to run: a window whose first two moments look
    like the reference's (``p >= level``) gives the classifier nothing its trees are likely to
    find, while a change in a correlation, a mean or a variance drives the p-value to ~0.
    What it cannot see is a change of the joint distribution that keeps every mean, variance
    and covariance (e.g. a dependence that turns from linear to U-shaped with the same
    correlation); the classifier is skipped on such a window when its moments look clean.

    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame(rng.normal(size=(5000, 2)), columns=["a", "b"])
    >>> screen = MomentScreen(ref, ["a", "b"])
    >>> same = pd.DataFrame(rng.normal(size=(1000, 2)), columns=["a", "b"])
    >>> cov = [[1.0, 0.5], [0.5, 1.0]]
    >>> moved = pd.DataFrame(rng.multivariate_normal([0, 0], cov, 1000), columns=["a", "b"])
    >>> screen.p_value(same) > 0.1, screen.p_value(moved) < 1e-6
    (True, True)
    """

    def __init__(self, reference: DataLike, features: Sequence[str]) -> None:
        ref = to_pandas(reference)
        self.features = [str(f) for f in features if f in ref.columns]
        self._levels = _levels_of(ref, self.features)
        x = _encode_with(ref, self.features, self._levels)
        self._mean = np.nanmean(x, axis=0) if len(x) else np.zeros(x.shape[1])
        self._mean = np.nan_to_num(self._mean)
        std = np.nanstd(x, axis=0) if len(x) else np.ones(x.shape[1])
        self._scale = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        moments = self._moments(x)
        self._level = moments.mean(axis=0)
        self._spread = moments.std(axis=0)
        self.n_reference = len(x)

    def _moments(self, x: np.ndarray) -> np.ndarray:
        """Per row: z_i for every feature, then z_i * z_j for every pair i <= j."""
        z = np.nan_to_num((x - self._mean) / self._scale)
        upper = np.triu_indices(z.shape[1])
        return np.hstack([z, z[:, upper[0]] * z[:, upper[1]]])

    def p_value(self, window: DataLike) -> float:
        """Bonferroni p-value of the largest moment change; 1.0 when nothing can be compared."""
        x = _encode_with(to_pandas(window), self.features, self._levels)
        if len(x) < 2 or self.n_reference < 2 or not self.features:
            return 1.0
        moments = self._moments(x)
        error = np.sqrt(self._spread**2 / self.n_reference + moments.var(axis=0) / len(x))
        shift = np.abs(moments.mean(axis=0) - self._level)
        # A moment constant in both samples (e.g. a constant feature) moved only if it changed.
        scores = np.where(
            error > 0, shift / np.where(error > 0, error, 1.0), np.where(shift > 1e-12, np.inf, 0.0)
        )
        largest = float(np.max(scores))
        return float(min(1.0, len(scores) * 2 * stats.norm.sf(largest)))


def _without_text(sample: pd.DataFrame, spec: ModelSpec | None) -> pd.DataFrame:
    """The sample without its free-text columns: coded as categories, every new name would be
    an unseen level, which separates any window from the reference (``detect.text_drift``
    watches text)."""
    declared = {f.name: f.type for f in spec.features} if spec is not None else {}
    text = [
        c
        for c in sample.columns
        if declared.get(str(c), _infer_type(sample[c])) is FeatureType.TEXT
    ]
    return sample.drop(columns=text) if text else sample


def _cap(frame: pd.DataFrame, limit: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= limit:
        return frame.reset_index(drop=True)
    idx = np.sort(rng.choice(len(frame), size=limit, replace=False))
    return frame.iloc[idx].reset_index(drop=True)


def _encode(ref: pd.DataFrame, win: pd.DataFrame, names: list[str]) -> np.ndarray:
    """A float matrix: numbers as they are, categories as codes of the reference's levels
    (levels the reference never saw share one extra code - itself a strong domain signal)."""
    levels = _levels_of(ref, names)
    return np.vstack([_encode_with(ref, names, levels), _encode_with(win, names, levels)])


def _levels_of(ref: pd.DataFrame, names: list[str]) -> dict[str, dict[str, int] | None]:
    """Per feature: None for a number, else the codes of the reference's category levels."""
    return {
        name: None
        if _infer_type(ref[name]).value in ("numeric", "integer")
        else {v: i for i, v in enumerate(pd.unique(ref[name].dropna().astype(str)))}
        for name in names
    }


def _encode_with(
    frame: pd.DataFrame, names: list[str], levels: dict[str, dict[str, int] | None]
) -> np.ndarray:
    """``frame`` as a float matrix with the reference's ``levels``; NaN where missing."""
    columns = []
    for name in names:
        known = levels[name]
        if name not in frame:
            columns.append(np.full(len(frame), np.nan))
        elif known is None:
            columns.append(_as_float(frame[name])[0])
        else:
            unknown = float(len(known))
            values = frame[name].tolist()
            codes = [np.nan if pd.isna(v) else known.get(str(v), unknown) for v in values]
            columns.append(np.array(codes, dtype=float))
    x = np.column_stack(columns) if columns else np.empty((len(frame), 0))
    x[~np.isfinite(x)] = np.nan
    return x


def _univariate_auc(x: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, float]:
    """Per-feature separability |AUC - 0.5| + 0.5, to say which marginals moved at all."""
    out = {}
    for j, name in enumerate(names):
        col = np.nan_to_num(
            x[:, j], nan=np.nanmin(x[:, j]) - 1 if np.isfinite(x[:, j]).any() else 0.0
        )
        u = stats.mannwhitneyu(col[y == 1], col[y == 0]).statistic
        auc = float(u) / ((y == 1).sum() * (y == 0).sum())
        out[name] = round(max(auc, 1 - auc), 4)
    return out
