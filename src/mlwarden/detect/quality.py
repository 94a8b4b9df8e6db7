"""Data quality from profiles: null bursts, out-of-range values, unit changes, unseen categories,
schema breaks (missing, unknown or retyped columns) and constant features.

Each check compares a window's profile with the reference profile (and, when given, the model's
schema) and reports a ``data_quality`` finding naming the feature and, in ``evidence["check"]``,
the sub-kind: ``null_burst``, ``non_finite``, ``out_of_range``, ``schema_range``,
``unit_change``, ``unseen_category``, ``missing_feature``, ``unknown_column``,
``not_in_reference``, ``retyped``, ``type_violation``, ``constant``; on a text feature
(``stats.text``) also ``empty_burst`` (blank strings) and ``type_violation`` (values that are
not strings, as a log may carry).

Rates are judged with a one-sided exact binomial test against the reference rate (Clopper &
Pearson, Biometrika 1934; ``scipy.stats.binomtest``) *and* a minimum size of change, for the
same reason as drift: on a big window a 0.1 % rise is significant and harmless. Defaults:

* ``alpha = 1e-3`` per check: there are up to a dozen checks per feature, and a quality finding
  triggers a fallback, so each must be strong evidence on its own.
* null burst: the null rate rose by at least 5 points and to at least twice the reference rate.
* out of range: at least 1 % of values outside the reference [min, max]; under no change a new
  value lands outside the range of n reference values with probability 2/(n+1). Reported as
  ``data_drift`` (real data reaching new values is a shift to retrain on, not a pipeline break);
  values outside the schema's declared range are ``data_quality`` (``schema_range``).
* unit change: the ratio of standard deviations (and of means, when the mean is informative:
  away from zero, or of a feature that is never negative) within a factor 10^±0.15 of 10, 100
  or 1000 (or their inverses): a unit conversion such as
  m -> cm, kg -> g or a fraction turned into a percentage (Ratio rule; no distribution test
  can tell "scaled" from "shifted", this one can).
* a known unit factor that is no power of ten (miles -> km x1.609, lb -> kg, ft -> m, in -> cm,
  m/s -> km/h, nautical miles -> km, and back): a rescale by 1.6 overlaps the reference's range,
  and the mean and spread of real data drift by such factors too (prices, counts of riders).
  What a rescale does and drift does not: the *whole shape* is the reference's, stretched by the
  factor. So the window must be far from the reference as it is (KS distance at least
  ``rescale_min_ks``, significant) and close to the reference multiplied by a known factor (KS
  distance at most ``rescale_max_ks`` and at most ``rescale_max_share`` of the first), on a
  feature that is never negative, reaches past 1 (a share, a probability or a column scaled to
  [0, 1] has no unit: Elec2's prices, whose level halved between 1996 and 1997, look like
  pounds turned into kilograms) and takes many values (at least ``rescale_min_edges`` distinct
  reference quantiles: not an hour or a month). On the bundled datasets in time order (every
  window against the scenarios' references, ``bench/bench_unit_factors.py``) this raises no
  finding, while miles turned into kilometres on the flights' distance is found in every window
  in either order.
* unseen categories: at least 1 % of the window and at least 5 rows. New values of a calendar
  column (the reference's levels and the new ones all name seasons, months, weekdays, hours or
  quarters, or are integers that continue the observed range without a gap:
  ``detect.calendar``) are the calendar moving past what training saw, not a broken feed:
  reported as ``data_drift`` (``calendar_level``), so never repaired, as out-of-range values are.
* retyped: at least half of the non-null values of a numeric feature are not numbers; below
  that, any significant share is a ``type_violation``.
* constant: the reference varied and the window (with at least ``min_rows`` values) does not,
  over more rows than the reference ever held one value in a row (``longest_run``: a calendar
  column read in time order holds one value for weeks; a stuck feed is longer than that); never
  a categorical whose levels name a calendar cycle (``detect.calendar.cycle``: a season lasts
  three months whatever the reference's stretch of it).

>>> import numpy as np, pandas as pd
>>> from mlwarden.stats.profile import Profile, ProfileLayout
>>> rng = np.random.default_rng(0)
>>> ref = pd.DataFrame({"price": rng.gamma(2.0, 10.0, 5000)})
>>> layout = ProfileLayout.fit(ref)
>>> window = pd.DataFrame({"price": rng.gamma(2.0, 10.0, 1000) * 100})
>>> findings = QualityDetector().detect(Profile.from_data(ref, layout),
...                                     Profile.from_data(window, layout))
>>> [(f.features, f.evidence["check"], f.evidence["factor"]) for f in findings]
[(['price'], 'unit_change', 100.0)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scipy import stats

from mlwarden.detect.base import Detector, DetectorContext, fmt_p, fmt_rows
from mlwarden.detect.calendar import cycle, progression
from mlwarden.detect.registry import register
from mlwarden.detect.statistics import ks_binned, ks_rescaled
from mlwarden.domain import Finding, FindingKind, ModelSpec
from mlwarden.errors import InvalidInput
from mlwarden.stats.profile import CategoricalStats, NumericStats, Profile
from mlwarden.stats.text import TextStats

__all__ = ["QualityDetector", "QualityThresholds"]


@dataclass(frozen=True)
class QualityThresholds:
    """Decision thresholds; the module docstring gives the reason for each default."""

    alpha: float = 1e-3
    null_increase: float = 0.05
    null_ratio: float = 2.0
    out_of_range_rate: float = 0.01
    unit_tolerance_log10: float = 0.15
    unseen_rate: float = 0.01
    unseen_min_rows: int = 5
    retyped_share: float = 0.5
    min_rows: int = 30
    rescale_min_ks: float = 0.3
    rescale_max_ks: float = 0.06
    rescale_max_share: float = 0.15
    rescale_min_edges: int = 20

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise InvalidInput("alpha must be in (0, 1)")


def _binom_p(k: int, n: int, p0: float) -> float:
    """One-sided P(X >= k) for X ~ Binomial(n, p0); 1.0 when there is nothing to test."""
    if n <= 0 or k <= 0:
        return 1.0
    p0 = min(max(p0, 1e-9), 1.0 - 1e-12)
    p = float(stats.binom.sf(k - 1, n, p0))
    return p if math.isfinite(p) else 1.0


UNIT_CHANGE_MIN_ORDERS = 0.5
# unit conversions by a factor that is no power of ten (those are found by the ratio rule), each
# with its inverse: miles and kilometres, pounds and kilograms, feet and metres, inches and
# centimetres, metres a second and kilometres an hour, nautical miles and kilometres
KNOWN_UNIT_FACTORS: dict[str, float] = {
    "mi -> km": 1.609344,
    "lb -> kg": 0.45359237,
    "ft -> m": 0.3048,
    "in -> cm": 2.54,
    "m/s -> km/h": 3.6,
    "nmi -> km": 1.852,
}
_UNIT_FACTORS: tuple[tuple[str, float], ...] = tuple(
    item
    for name, factor in KNOWN_UNIT_FACTORS.items()
    for item in ((name, factor), (" -> ".join(reversed(name.split(" -> "))), 1.0 / factor))
)


@register
class QualityDetector(Detector):
    """Data-quality checks of a window's profile against the reference (and the schema)."""

    name = "data_quality"
    kind = FindingKind.DATA_QUALITY
    order = 30

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], context: DetectorContext
    ) -> QualityDetector:
        return cls(context.spec)

    def __init__(
        self, spec: ModelSpec | None = None, thresholds: QualityThresholds | None = None
    ) -> None:
        self.spec = spec
        self.t = thresholds or QualityThresholds()

    def detect(
        self, reference: Profile, window: Profile, *, window_index: int | None = None
    ) -> list[Finding]:
        if window.rows == 0:
            # No rows is not broken data; throughput and freshness detectors report silence.
            return []
        out: list[Finding] = []

        def add(
            features: list[str],
            check: str,
            statistic: str,
            score: float,
            threshold: float,
            message: str,
            p_value: float | None = None,
            kind: FindingKind = FindingKind.DATA_QUALITY,
            **evidence: Any,
        ) -> None:
            out.append(
                Finding(
                    kind=kind,
                    detector=self.name,
                    features=features,
                    statistic=statistic,
                    score=float(score),
                    threshold=float(threshold),
                    p_value=p_value,
                    window=window_index,
                    message=message,
                    evidence={"check": check, **evidence},
                )
            )

        missing = [name for name, s in window.features.items() if s.absent and s.absent == s.rows]
        for name in missing:
            add(
                [name],
                "missing_feature",
                "missing_share",
                1.0,
                0.0,
                f"{name} is missing from all {fmt_rows(window.rows)} of the window "
                "(schema break: column dropped or renamed)",
            )
        for name, rows in window.extra_columns.items():
            hint = f" (renamed from {', '.join(missing)}?)" if missing else ""
            add(
                [name],
                "unknown_column",
                "rows",
                rows,
                0.0,
                f"unknown column {name!r} in {fmt_rows(rows)}, not in the reference{hint}",
            )
        if self.spec is not None:
            for feature in self.spec.features:
                if feature.monitored and feature.name not in reference.features:
                    add(
                        [feature.name],
                        "not_in_reference",
                        "rows",
                        window.rows,
                        0.0,
                        f"{feature.name} is in the schema but not in the reference profile: "
                        "it cannot be checked for drift until the reference is rebuilt",
                    )

        for name, win in window.features.items():
            ref = reference.features.get(name)
            if ref is None or name in missing:
                continue
            if isinstance(win, NumericStats) and isinstance(ref, NumericStats):
                self._numeric(name, ref, win, add)
            elif isinstance(win, CategoricalStats) and isinstance(ref, CategoricalStats):
                self._categorical(name, ref, win, add)
            elif isinstance(win, TextStats) and isinstance(ref, TextStats):
                self._text(name, ref, win, add)
        return out

    # -- shared

    def _rate_rise(
        self, name: str, check: str, what: str, k: int, n: int, k_ref: int, n_ref: int, add: Any
    ) -> None:
        """A rate (nulls, non-finite values) that rose past the size and significance bars."""
        if n <= 0:
            return
        rate = k / n
        ref_rate = k_ref / n_ref if n_ref > 0 else 0.0
        if rate - ref_rate < self.t.null_increase or rate < self.t.null_ratio * ref_rate:
            return
        # The reference rate is an estimate too: a small floor keeps a clean reference from
        # making any single null "impossible".
        p = _binom_p(k, n, max(ref_rate, 1.0 / (n_ref + 1) if n_ref else 1e-3))
        if p >= self.t.alpha:
            return
        add(
            [name],
            check,
            f"{what}_rate",
            rate,
            ref_rate + self.t.null_increase,
            f"{name}: {what} rate {rate:.1%} vs {ref_rate:.1%} in the reference "
            f"({k:,} of {fmt_rows(n)}, {fmt_p(p)})",
            p,
            **{f"{what}_rate": rate, f"reference_{what}_rate": ref_rate, "rows": n},
        )

    # -- numeric

    def _numeric(self, name: str, ref: NumericStats, win: NumericStats, add: Any) -> None:
        t = self.t
        n_present = win.rows - win.absent
        ref_present = ref.rows - ref.absent
        self._rate_rise(
            name, "null_burst", "null", win.nulls, n_present, ref.nulls, ref_present, add
        )
        self._rate_rise(
            name,
            "non_finite",
            "non_finite",
            win.non_finite,
            n_present,
            ref.non_finite,
            ref_present,
            add,
        )
        non_null = win.count + win.invalid + win.non_finite
        if win.invalid and non_null:
            share = win.invalid / non_null
            if share >= t.retyped_share:
                add(
                    [name],
                    "retyped",
                    "invalid_share",
                    share,
                    t.retyped_share,
                    f"{name} arrives as text: {share:.0%} of {fmt_rows(non_null)} are not "
                    "numbers (schema break: retyped feature)",
                    invalid=win.invalid,
                )
            else:
                ref_share = ref.invalid / max(ref.count + ref.invalid, 1)
                p = _binom_p(win.invalid, non_null, max(ref_share, 1e-4))
                if p < t.alpha:
                    add(
                        [name],
                        "type_violation",
                        "invalid_share",
                        share,
                        ref_share,
                        f"{name}: {win.invalid:,} non-numeric values ({share:.1%}) in a numeric "
                        f"feature ({fmt_p(p)})",
                        p,
                        invalid=win.invalid,
                    )
        if win.count < t.min_rows or ref.count < 2:
            return
        if self._unit_change(name, ref, win, add) or self._known_unit_factor(name, ref, win, add):
            return
        # no longer than the reference held one value when read in order (a calendar column
        # in time order): normal, not a stuck feed
        # (a spread that overflowed, values near 1e300, is no constant: inf <= inf)
        constant = math.isfinite(win.std) and win.std <= 1e-9 * ref.std
        if ref.std > 0 and constant and win.count > ref.longest_run:
            add(
                [name],
                "constant",
                "std_ratio",
                0.0,
                0.0,
                f"{name} is constant ({win.mean:.6g}) over {fmt_rows(win.count)}; "
                f"the reference std is {ref.std:.4g}",
                value=win.mean,
            )
        outside = int(win.hist[0] + win.hist[-1])
        rate = outside / win.count
        if rate >= t.out_of_range_rate:
            p = _binom_p(outside, win.count, 2.0 / (ref.count + 1))
            if p < t.alpha:
                add(
                    [name],
                    "out_of_range",
                    "out_of_range_rate",
                    rate,
                    t.out_of_range_rate,
                    f"{name}: {rate:.1%} of {fmt_rows(win.count)} outside the reference range "
                    f"[{ref.min:.4g}, {ref.max:.4g}] (window {win.min:.4g}..{win.max:.4g}, "
                    f"{fmt_p(p)})",
                    p,
                    # new values beyond what training saw (prices in a hotter summer) are a
                    # shift of the data, not a broken pipeline: the schema's range says broken
                    kind=FindingKind.DATA_DRIFT,
                    out_of_range_rate=rate,
                    below=int(win.hist[0]),
                    above=int(win.hist[-1]),
                )
        spec = self._spec_feature(name)
        if spec is not None:
            low = spec.minimum is not None and win.min < spec.minimum
            high = spec.maximum is not None and win.max > spec.maximum
            if low or high:
                bound = f"[{spec.minimum}, {spec.maximum}]"
                add(
                    [name],
                    "schema_range",
                    "extreme",
                    win.min if low else win.max,
                    spec.minimum if low else spec.maximum,
                    f"{name}: values {win.min:.4g}..{win.max:.4g} break the schema range {bound}",
                    minimum=spec.minimum,
                    maximum=spec.maximum,
                )

    def _unit_change(self, name: str, ref: NumericStats, win: NumericStats, add: Any) -> bool:
        if ref.std <= 0 or win.std <= 0:
            return False
        ratio_std = win.std / ref.std
        if not math.isfinite(ratio_std) or ratio_std <= 0:
            # values near the float limit (1e300) overflow the sum of squares: no scale to read
            return False
        log_std = math.log10(ratio_std)
        k = round(log_std)
        tol = self.t.unit_tolerance_log10
        if k == 0 or abs(k) > 3 or abs(log_std - k) > tol:
            return False
        ratio_mean = None
        if abs(ref.mean) >= 0.5 * ref.std or ref.min >= 0:
            # When the mean is well away from zero, a rescale moves it by the same factor. So it
            # does for a feature that is never negative, however skewed: rain is zero most hours,
            # its mean is a tenth of its std, and a dry week cuts its spread tenfold; only the
            # mean, cut by another factor (the share of rainy hours fell too), tells that week
            # from rain measured in other units. Only a centred feature's mean is no scale.
            if ref.mean * win.mean <= 0:
                return False
            ratio_mean = win.mean / ref.mean
            if abs(math.log10(ratio_mean) - k) > tol:
                return False
        factor = 10.0**k
        # score: orders of magnitude the spread moved; threshold: half an order, the least a
        # rescale by a power of ten can show (so x100 scores 4x its threshold, whatever its sign)
        add(
            [name],
            "unit_change",
            "scale_orders_of_magnitude",
            abs(log_std),
            UNIT_CHANGE_MIN_ORDERS,
            f"{name} looks rescaled by {factor:g}: std {ref.std:.4g} -> {win.std:.4g}, "
            f"mean {ref.mean:.4g} -> {win.mean:.4g} on {fmt_rows(win.count)} (unit change?)",
            factor=factor,
            ratio_std=ratio_std,
            ratio_mean=ratio_mean,
        )
        return True

    def _known_unit_factor(self, name: str, ref: NumericStats, win: NumericStats, add: Any) -> bool:
        """The window is the reference stretched by a known unit factor (module docstring)."""
        t = self.t
        edges = ref.bins.edges
        if ref.min < 0 or ref.max <= 1.0 or edges.size < t.rescale_min_edges:
            return False
        as_is, p = ks_binned(ref.hist, win.hist)
        if as_is < t.rescale_min_ks or p >= t.alpha:
            return False
        fits = [
            (distance, unit, factor)
            for unit, factor in _UNIT_FACTORS
            if (distance := ks_rescaled(ref.hist, win.hist, edges, factor)) is not None
        ]
        if not fits:
            return False
        distance, unit, factor = min(fits)
        if distance > t.rescale_max_ks or distance > t.rescale_max_share * as_is:
            return False
        # score: how much closer the window is to the rescaled reference than to the reference
        # (KS distances); threshold: the least ratio that counts
        add(
            [name],
            "unit_change",
            "rescaled_fit_ratio",
            as_is / max(distance, 1e-9),
            1.0 / t.rescale_max_share,
            f"{name} looks converted ({unit}, x{factor:.4g}): KS distance {as_is:.2f} to the "
            f"reference, {distance:.3f} to the reference x{factor:.4g}; mean {ref.mean:.4g} -> "
            f"{win.mean:.4g} on {fmt_rows(win.count)} (unit change?)",
            p,
            factor=factor,
            unit=unit,
            ks_reference=as_is,
            ks_rescaled=distance,
            ratio_mean=win.mean / ref.mean if ref.mean else None,
        )
        return True

    def _spec_feature(self, name: str) -> Any:
        if self.spec is None:
            return None
        return next((f for f in self.spec.features if f.name == name), None)

    @staticmethod
    def _calendar(ref: CategoricalStats, win: CategoricalStats) -> str | None:
        """The calendar cycle the window's unseen levels continue (``detect.calendar``), or
        None; never when a level's name was not kept (beyond the reference's cap, or the
        window's)."""
        if ref.levels.open_vocabulary or win.unseen_other:
            return None
        return progression(QualityDetector._levels(ref), win.unseen)

    @staticmethod
    def _levels(ref: CategoricalStats) -> tuple[str, ...]:
        """Every level the reference named (counted, and known but rare)."""
        return (*ref.levels.levels, *ref.levels.known_other)

    # -- text

    def _text(self, name: str, ref: TextStats, win: TextStats, add: Any) -> None:
        """Nulls and blank strings that rose as a burst does, and values that are not text."""
        n_present, ref_present = win.rows - win.absent, ref.rows - ref.absent
        self._rate_rise(
            name, "null_burst", "null", win.nulls, n_present, ref.nulls, ref_present, add
        )
        # an empty name or comment is a value the upstream lost, as a null is
        self._rate_rise(
            name, "empty_burst", "empty", win.empty, win.count, ref.empty, ref.count, add
        )
        self._rate_rise(
            name,
            "type_violation",
            "non_text",
            win.invalid,
            win.count + win.invalid,
            ref.invalid,
            ref.count + ref.invalid,
            add,
        )

    # -- categorical

    def _categorical(
        self, name: str, ref: CategoricalStats, win: CategoricalStats, add: Any
    ) -> None:
        t = self.t
        self._rate_rise(
            name,
            "null_burst",
            "null",
            win.nulls,
            win.rows - win.absent,
            ref.nulls,
            ref.rows - ref.absent,
            add,
        )
        if win.count == 0:
            return
        unseen = win.unseen_count
        rate = unseen / win.count
        if unseen >= t.unseen_min_rows and rate >= t.unseen_rate:
            top = sorted(win.unseen.items(), key=lambda kv: -kv[1])[:5]
            names = ", ".join(f"{k!r} ({v:,})" for k, v in top)
            continued = self._calendar(ref, win)
            if continued is not None:
                add(
                    [name],
                    "calendar_level",
                    "unseen_rate",
                    rate,
                    t.unseen_rate,
                    f"{name}: {unseen:,} of {fmt_rows(win.count)} ({rate:.1%}) in new values of "
                    f"a calendar column ({continued}) the reference never saw: {names}; the "
                    "calendar moving on, not a broken feed",
                    # a season or a month the training data did not reach is real data to
                    # retrain on, not a value to rewrite: drift, never a repair
                    kind=FindingKind.DATA_DRIFT,
                    unseen=dict(top),
                    unseen_rate=rate,
                    calendar=continued,
                )
            else:
                add(
                    [name],
                    "unseen_category",
                    "unseen_rate",
                    rate,
                    t.unseen_rate,
                    f"{name}: {unseen:,} of {fmt_rows(win.count)} ({rate:.1%}) in categories "
                    f"the reference never saw: {names}",
                    unseen=dict(top),
                    unseen_rate=rate,
                )
        if win.count >= t.min_rows and ref.count:
            ref_top = int(max(ref.counts.max(initial=0), ref.other)) / ref.count
            levels_seen = int((win.counts > 0).sum()) + (1 if win.other else 0) + len(win.unseen)
            if (
                levels_seen == 1
                and ref_top < 0.99
                and not win.unseen_other
                and win.count > ref.longest_run
                # a season or a weekday holds for longer than a window: time, not a stuck feed
                and cycle(self._levels(ref)) is None
            ):
                add(
                    [name],
                    "constant",
                    "levels",
                    1.0,
                    1.0,
                    f"{name} takes a single value over {fmt_rows(win.count)}; the reference's "
                    f"most common level held only {ref_top:.0%}",
                )
