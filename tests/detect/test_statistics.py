"""The binned statistics against SciPy's exact ones on raw data, and the corrections by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlwarden.detect.statistics import (
    benjamini_hochberg,
    binned_tests,
    chi_square,
    holm,
    js_distance,
    ks_binned,
    ks_exact,
    psi,
    wasserstein_binned,
)
from mlwarden.stats.profile import NumericBins


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.25, 1.0])
def test_binned_ks_and_wasserstein_track_the_exact_values(shift: float) -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=50_000)
    win = rng.normal(shift, 1, 2_000)
    bins = NumericBins.fit(ref)
    h_ref, h_win = bins.count(ref), bins.count(win)
    d_binned, p_binned = ks_binned(h_ref, h_win)
    d_exact, p_exact = ks_exact(ref, win)
    # Binned KS is the exact CDF gap sampled at the edges: never larger, and close.
    assert d_binned <= d_exact + 1e-12
    assert d_exact - d_binned < 0.02
    assert (p_binned < 1e-3) == (p_exact < 1e-3)
    w = wasserstein_binned(
        h_ref, h_win, bins.edges, min(ref.min(), win.min()), max(ref.max(), win.max())
    )
    # Within a few percent: the wide tail bins are assumed uniform.
    exact = stats.wasserstein_distance(ref, win)
    assert abs(w - exact) < 0.02 + 0.06 * exact


def test_psi_is_small_on_same_distribution_and_grows_with_shift() -> None:
    rng = np.random.default_rng(2)
    ref = rng.normal(size=100_000)
    bins = NumericBins.fit(ref)
    same = psi(bins.count(ref), bins.count(rng.normal(size=1000)))
    shifted = psi(bins.count(ref), bins.count(rng.normal(1.0, 1, 1000)))
    assert same < 0.03
    assert shifted > 0.5
    # Empty bins on either side stay finite thanks to smoothing.
    assert math.isfinite(psi(np.array([10, 0, 0]), np.array([0, 0, 10])))


def test_chi_square_matches_scipy_when_cells_are_large() -> None:
    ref = np.array([400, 300, 200, 100])
    win = np.array([90, 80, 20, 10])
    stat, p = chi_square(ref, win)
    expected = stats.chi2_contingency(np.vstack([ref, win]), correction=False)
    assert math.isclose(stat, expected.statistic, rel_tol=1e-9)
    assert math.isclose(p, expected.pvalue, rel_tol=1e-6)


def test_chi_square_pools_rare_levels_and_handles_degenerate_tables() -> None:
    stat, p = chi_square(np.array([1000, 1000, 1, 1]), np.array([100, 100, 0, 3]))
    assert math.isfinite(stat) and 0.0 <= p <= 1.0
    assert chi_square(np.array([5]), np.array([7])) == (0.0, 1.0)
    assert chi_square(np.array([0, 0]), np.array([3, 4])) == (0.0, 1.0)


def test_js_distance_matches_scipy() -> None:
    p, q = np.array([50, 30, 20, 0]), np.array([10, 30, 40, 20])
    assert math.isclose(js_distance(p, q), jensenshannon(p / 100, q / 100, base=2), rel_tol=1e-9)
    assert js_distance(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert js_distance(np.array([0, 0]), np.array([1, 1])) == 0.0


def test_holm_and_benjamini_hochberg_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1, made monotone.
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted p*4/rank = 0.02, 0.02, 0.04, 0.04, made monotone from the top.
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert holm([]) == [] and benjamini_hochberg([]) == []


def test_empty_inputs_give_neutral_finite_results() -> None:
    empty = np.zeros(5, dtype=np.int64)
    full = np.array([1, 2, 3, 2, 1])
    assert ks_binned(empty, full) == (0.0, 1.0)
    assert wasserstein_binned(empty, full, np.arange(4.0), 0.0, 3.0) == 0.0
    assert psi(empty, full) == 0.0
    assert ks_exact(np.array([np.nan]), np.array([1.0])) == (0.0, 1.0)


@pytest.mark.parametrize("bins", [3, 8, 11, 101])
def test_binned_tests_of_many_rows_equal_each_row_alone(bins: int) -> None:
    """Row by row, ``binned_tests`` gives what ks_binned, wasserstein_binned and psi give one
    feature: PSI grouped (more than ten bins) or not, empty and one-sided rows, shifts."""
    rng = np.random.default_rng(bins)
    rows = 40
    ref = rng.integers(0, 50, (rows, bins))
    win = rng.integers(0, 50, (rows, bins)) * (rng.random((rows, 1)) < 0.9)  # some all-zero
    win[:5] = 0
    win[:5, -1] = 500  # rows whose window lies above the reference: far from it
    ref[5] = 0  # an empty reference row
    edges = np.cumsum(rng.uniform(0.1, 2.0, (rows, bins - 1)), axis=1) - 5.0
    lo = edges[:, 0] - rng.uniform(0, 3, rows)
    hi = edges[:, -1] + rng.uniform(0, 3, rows)
    hi[6] = edges[6, -1] - 1.0  # a window maximum below the last edge: the edge closes the bin
    tests = binned_tests(ref, win, edges, lo, hi)
    for i in range(rows):
        ks, p = ks_binned(ref[i], win[i])
        w = wasserstein_binned(ref[i], win[i], edges[i], lo[i], hi[i])
        expected = (ks, p, w, psi(ref[i], win[i]))
        got = (tests.ks[i], tests.ks_p_value[i], tests.wasserstein[i], tests.psi[i])
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15), i
    assert np.all(tests.ks_p_value[:5] < 1e-3)
