"""Two-sample tests and distances on binned distributions (and exact ones on raw arrays).

Every function here returns finite numbers for any input, including empty ones: the callers
decide what "not enough data" means, these never produce NaN.

* Kolmogorov-Smirnov on binned CDFs — the statistic is the largest CDF gap at the reference's bin
  edges, a lower bound of the exact statistic (so the test is conservative); p-value from the
  asymptotic Kolmogorov distribution with Stephens' small-sample correction (Stephens, "Use of
  the Kolmogorov-Smirnov, Cramér-von Mises and related statistics without extensive tables",
  JRSS-B 1970; Press et al., Numerical Recipes §14.3). :func:`ks_exact` runs SciPy's exact test
  when raw arrays are at hand.
* Wasserstein-1 (earth mover's) distance, ``∫|F_a - F_b| dx``, integrated over the bin edges with
  the CDFs linear inside each bin (Villani, "Optimal Transport", 2009; Ramdas, García Trillos &
  Cuturi, "On Wasserstein two-sample testing", 2017), to be divided by the reference std.
* Population Stability Index ``Σ (w - r) ln(w / r)`` on about ten reference-quantile groups
  (Yurdakul, "Statistical properties of population stability index", 2018: its bias grows as
  bins/rows, hence the coarse groups), with additive smoothing so empty bins stay finite.
* Pearson's chi-square test of homogeneity on a 2xK table, rare levels pooled so every expected
  count is at least 5 (Cochran, "Some methods for strengthening the common χ² tests", 1954).
* Jensen-Shannon distance (base 2, in [0, 1]) (Lin, "Divergence measures based on the Shannon
  entropy", IEEE Trans. Inf. Theory 1991; Endres & Schindelin 2003 for the metric).
* Holm's step-down and Benjamini-Hochberg corrections for testing many features at once
  (Holm, Scand. J. Stat. 1979; Benjamini & Hochberg, JRSS-B 1995).

:func:`binned_tests` runs KS, Wasserstein and PSI on many features at once, one row of a 2-D
array per feature (histograms of one length), with the same arithmetic in the same order as the
functions of one feature: a check of 400 features is a few array operations, not 400 rounds of
small ones.

>>> import numpy as np
>>> ref = np.array([10, 20, 40, 20, 10]); win = np.array([0, 10, 20, 40, 30])
>>> stat, p = ks_binned(ref, win)
>>> round(stat, 2), p < 0.01
(0.4, True)
>>> round(js_distance(np.array([5, 5]), np.array([5, 5])), 3)
0.0
>>> holm([0.01, 0.04, 0.03])
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

__all__ = [
    "BinnedTests",
    "benjamini_hochberg",
    "binned_tests",
    "chi_square",
    "holm",
    "js_distance",
    "ks_binned",
    "ks_exact",
    "ks_pvalue",
    "ks_rescaled",
    "psi",
    "wasserstein_binned",
]


def _cdf(hist: np.ndarray) -> np.ndarray:
    total = hist.sum()
    if total <= 0:
        return np.zeros(hist.size, dtype=float)
    return np.cumsum(hist, dtype=float) / float(total)


def ks_pvalue(statistic: float, n: int, m: int) -> float:
    """Asymptotic two-sided p-value of a two-sample KS statistic for samples of n and m."""
    if n <= 0 or m <= 0 or statistic <= 0:
        return 1.0
    ne = n * m / (n + m)
    lam = (math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * statistic
    return float(min(max(special.kolmogorov(lam), 0.0), 1.0))


def ks_binned(ref_hist: np.ndarray, win_hist: np.ndarray) -> tuple[float, float]:
    """KS statistic (largest CDF gap at the bin edges) and its p-value, from two histograms."""
    n, m = int(ref_hist.sum()), int(win_hist.sum())
    if n == 0 or m == 0:
        return 0.0, 1.0
    stat = float(np.max(np.abs(_cdf(ref_hist) - _cdf(win_hist))))
    return stat, ks_pvalue(stat, n, m)


def ks_rescaled(
    ref_hist: np.ndarray,
    win_hist: np.ndarray,
    edges: np.ndarray,
    factor: float,
    min_mass: float = 0.8,
) -> float | None:
    """KS distance between a window and the reference multiplied by ``factor``, from their
    histograms on the reference's ``edges``; None when the comparison would say nothing.

    ``P(factor * X < e) = P(X < e / factor)``, read off the reference's CDF (linear between its
    edges), is compared with the window's CDF at the edges ``e`` for which ``e / factor`` lies
    inside the reference's range: only there are both resolved. Unless at least ``min_mass`` of
    the window and of the rescaled reference lie between those edges, None: a window far beyond
    the reference's range (a summer against a winter) matches any rescale on the few edges left.
    """
    if edges.size < 2 or factor <= 0 or ref_hist.sum() <= 0 or win_hist.sum() <= 0:
        return None
    below_ref = _cdf(ref_hist)[:-1]
    below_win = _cdf(win_hist)[:-1]
    scaled = np.interp(edges / factor, edges, below_ref, left=0.0, right=1.0)
    inside = np.flatnonzero((edges / factor >= edges[0]) & (edges / factor <= edges[-1]))
    if inside.size < 2:
        return None
    lo, hi = inside[0], inside[-1]
    if min(below_win[hi] - below_win[lo], scaled[hi] - scaled[lo]) < min_mass:
        return None
    return float(np.max(np.abs(below_win[inside] - scaled[inside])))


def ks_exact(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """SciPy's two-sample KS test on raw values (NaN and infinities dropped)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return 0.0, 1.0
    result = stats.ks_2samp(a, b)
    return float(result.statistic), float(result.pvalue)


def wasserstein_binned(
    ref_hist: np.ndarray, win_hist: np.ndarray, edges: np.ndarray, lo: float, hi: float
) -> float:
    """Wasserstein-1 distance between two histograms on shared ``edges``.

    The histograms have ``len(edges) + 1`` bins, the first and last open; ``lo`` and ``hi``
    close them (the smallest and largest value either side saw).
    """
    if ref_hist.sum() <= 0 or win_hist.sum() <= 0:
        return 0.0
    if edges.size == 0:
        return 0.0
    lo = min(lo, float(edges[0]))
    hi = max(hi, float(edges[-1]))
    grid = np.concatenate([[lo], edges, [hi]])
    # CDF at every grid point: 0 at lo, the cumulative share below each edge, 1 at hi.
    fa = np.concatenate([[0.0], _cdf(ref_hist)])
    fb = np.concatenate([[0.0], _cdf(win_hist)])
    d0, d1 = (fa - fb)[:-1], (fa - fb)[1:]
    width = np.diff(grid)
    # |linear| integrated exactly, also when the difference changes sign inside a bin.
    same = d0 * d1 >= 0
    area_same = 0.5 * (np.abs(d0) + np.abs(d1)) * width
    denom = np.abs(d0) + np.abs(d1)
    with np.errstate(invalid="ignore", divide="ignore"):
        area_cross = np.where(denom > 0, 0.5 * (d0 * d0 + d1 * d1) / denom, 0.0) * width
    total = float(np.sum(np.where(same, area_same, area_cross)))
    return total if math.isfinite(total) else 0.0


def _quantile_groups(ref_hist: np.ndarray, groups: int) -> np.ndarray:
    """Group id of each bin so that each group holds about 1/groups of the reference."""
    share = _cdf(ref_hist) - ref_hist / max(ref_hist.sum(), 1)
    return np.asarray(np.minimum((share * groups).astype(int), groups - 1))


def psi(ref_hist: np.ndarray, win_hist: np.ndarray, groups: int = 10) -> float:
    """Population Stability Index on about ``groups`` reference-quantile groups of the bins."""
    n, m = ref_hist.sum(), win_hist.sum()
    if n <= 0 or m <= 0:
        return 0.0
    if ref_hist.size > groups:
        ids = _quantile_groups(ref_hist, groups)
        ref_hist = np.bincount(ids, weights=ref_hist, minlength=groups)
        win_hist = np.bincount(ids, weights=win_hist, minlength=groups)
    # Additive (Laplace-style) smoothing: an empty bin on one side must not make PSI infinite.
    k = ref_hist.size
    r = (ref_hist + 0.5) / (n + 0.5 * k)
    w = (win_hist + 0.5) / (m + 0.5 * k)
    return float(np.sum((w - r) * np.log(w / r)))


@dataclass(frozen=True)
class BinnedTests:
    """KS, Wasserstein-1 and PSI of many features, one entry per row of :func:`binned_tests`."""

    ks: np.ndarray
    ks_p_value: np.ndarray
    wasserstein: np.ndarray
    psi: np.ndarray


def _cdf_rows(hist: np.ndarray, total: np.ndarray) -> np.ndarray:
    """:func:`_cdf` of every row: the same cumulative sum over the same total."""
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf = np.cumsum(hist, axis=1, dtype=float) / total.astype(float)[:, None]
    return np.where(total[:, None] > 0, cdf, 0.0)


def binned_tests(
    ref_hist: np.ndarray,
    win_hist: np.ndarray,
    edges: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    groups: int = 10,
) -> BinnedTests:
    """:func:`ks_binned`, :func:`wasserstein_binned` and :func:`psi` of every row at once.

    ``ref_hist`` and ``win_hist`` are (features x bins) counts, ``edges`` (features x bins-1)
    each feature's reference edges, ``lo`` and ``hi`` the smallest and largest value either side
    saw. Row ``i`` gives what the three functions give for feature ``i`` (the same operations,
    element by element, and sums over the same values in the same order).
    """
    ref_hist = np.asarray(ref_hist)
    win_hist = np.asarray(win_hist)
    rows = ref_hist.shape[0]
    n, m = ref_hist.sum(axis=1), win_hist.sum(axis=1)
    fa, fb = _cdf_rows(ref_hist, n), _cdf_rows(win_hist, m)
    both = (n > 0) & (m > 0)

    # Kolmogorov-Smirnov: the largest CDF gap at the edges, and ks_pvalue of it
    ks = np.where(both, np.max(np.abs(fa - fb), axis=1, initial=0.0), 0.0)
    # n * m / (n + m) as Python computes it for one feature (exact integers, then one rounding)
    ne = np.array(
        [
            a * b / (a + b) if a > 0 and b > 0 else 1.0
            for a, b in zip(n.tolist(), m.tolist(), strict=True)
        ]
    )
    root = np.sqrt(ne)
    lam = (root + 0.12 + 0.11 / root) * ks
    p = np.clip(special.kolmogorov(lam), 0.0, 1.0)
    p = np.where(both & (ks > 0), p, 1.0)

    # Wasserstein-1 with the CDFs linear inside each bin (wasserstein_binned, row by row)
    if edges.shape[1]:
        lo = np.minimum(lo, edges[:, 0])
        hi = np.maximum(hi, edges[:, -1])
    grid = np.concatenate([lo[:, None], edges, hi[:, None]], axis=1)
    zero = np.zeros((rows, 1))
    diff = np.concatenate([zero, fa], axis=1) - np.concatenate([zero, fb], axis=1)
    d0, d1 = diff[:, :-1], diff[:, 1:]
    width = np.diff(grid, axis=1)
    same = d0 * d1 >= 0
    area_same = 0.5 * (np.abs(d0) + np.abs(d1)) * width
    denom = np.abs(d0) + np.abs(d1)
    with np.errstate(invalid="ignore", divide="ignore"):
        area_cross = np.where(denom > 0, 0.5 * (d0 * d0 + d1 * d1) / denom, 0.0) * width
    total = np.sum(np.where(same, area_same, area_cross), axis=1)
    total = np.where(np.isfinite(total), total, 0.0)
    wasserstein = np.where(both & (edges.shape[1] > 0), total, 0.0)

    # PSI on about ``groups`` reference-quantile groups (psi, row by row)
    r_hist, w_hist = ref_hist, win_hist
    if ref_hist.shape[1] > groups:
        share = fa - ref_hist / np.maximum(n, 1)[:, None]
        ids = np.minimum((share * groups).astype(int), groups - 1)
        # one bincount for every row: row i's groups are i * groups .. i * groups + groups - 1
        flat = (ids + np.arange(rows)[:, None] * groups).ravel()
        size = rows * groups
        r_hist = np.bincount(flat, weights=ref_hist.ravel(), minlength=size).reshape(rows, groups)
        w_hist = np.bincount(flat, weights=win_hist.ravel(), minlength=size).reshape(rows, groups)
    k = r_hist.shape[1]
    r = (r_hist + 0.5) / (n + 0.5 * k)[:, None]
    w = (w_hist + 0.5) / (m + 0.5 * k)[:, None]
    psi_values = np.where(both, np.sum((w - r) * np.log(w / r), axis=1), 0.0)
    return BinnedTests(ks, p, wasserstein, psi_values)


def chi_square(ref_counts: np.ndarray, win_counts: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity between two count vectors over the same levels."""
    ref_counts = np.asarray(ref_counts, dtype=float)
    win_counts = np.asarray(win_counts, dtype=float)
    n, m = ref_counts.sum(), win_counts.sum()
    if n <= 0 or m <= 0:
        return 0.0, 1.0
    total = ref_counts + win_counts
    keep = total > 0
    ref_counts, win_counts, total = ref_counts[keep], win_counts[keep], total[keep]
    # Expected counts: the smaller side decides whether a level is too rare to test alone.
    expected_min = total * min(n, m) / (n + m)
    rare = expected_min < 5
    if rare.any() and (~rare).any():
        ref_counts = np.append(ref_counts[~rare], ref_counts[rare].sum())
        win_counts = np.append(win_counts[~rare], win_counts[rare].sum())
    elif rare.all():
        return 0.0, 1.0
    if ref_counts.size < 2:
        return 0.0, 1.0
    table = np.vstack([ref_counts, win_counts])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        cells = np.where(expected > 0, (table - expected) ** 2 / expected, 0.0)
    stat = float(cells.sum())
    dof = ref_counts.size - 1
    p = float(stats.chi2.sf(stat, dof))
    return stat, (p if math.isfinite(p) else 1.0)


def js_distance(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count vectors."""
    p = np.asarray(p_counts, dtype=float)
    q = np.asarray(q_counts, dtype=float)
    if p.sum() <= 0 or q.sum() <= 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    mid = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / mid[mask])))

    divergence = max(0.5 * kl(p) + 0.5 * kl(q), 0.0)
    return float(min(math.sqrt(divergence), 1.0))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (controls the family-wise error rate)."""
    p = np.asarray(p_values, dtype=float)
    k = p.size
    if k == 0:
        return []
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(k)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p[i]))
        adjusted[i] = running
    return [round(float(v), 15) for v in adjusted]


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (controls the false discovery rate)."""
    p = np.asarray(p_values, dtype=float)
    k = p.size
    if k == 0:
        return []
    order = np.argsort(p, kind="stable")
    ranked = p[order] * k / np.arange(1, k + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty(k)
    adjusted[order] = np.minimum(ranked, 1.0)
    return [float(v) for v in adjusted]
