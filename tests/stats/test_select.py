"""Bucket selection (``mlwarden.stats.select``) gives exactly what sorting every value gave:
the same quantile edges, histograms, minimum and maximum, bit for bit."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from mlwarden.stats import select
from mlwarden.stats.profile import NumericBins, NumericStats
from mlwarden.stats.select import order_view


def sorted_edges(xs: np.ndarray, bins: int = 100) -> np.ndarray:
    """``NumericBins.from_sorted`` as it was before bucket selection: the reference."""
    if xs.size == 0:
        return np.empty(0)
    pos = np.linspace(0.0, 1.0, bins + 1)[1:-1] * (xs.size - 1)
    low = np.floor(pos).astype(np.intp)
    high = np.minimum(low + 1, xs.size - 1)
    frac = pos - low
    inner = xs[low] + frac * (xs[high] - xs[low])
    lo, top = float(xs[0]), np.nextafter(float(xs[-1]), math.inf)
    edges = np.unique(np.concatenate([[lo], inner[(inner > lo) & (inner < top)], [top]]))
    return edges.astype(float)


def sorted_counts(xs: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``NumericBins.count_sorted`` as it was before bucket selection: the reference."""
    pos = np.searchsorted(xs, edges, side="left")
    return np.diff(np.concatenate([[0], pos, [xs.size]])).astype(np.int64)


Maker = Callable[[np.random.Generator, int], np.ndarray]

SHAPES: dict[str, Maker] = {
    "normal": lambda r, n: r.normal(50, 10, n),
    "lognormal_heavy": lambda r, n: r.lognormal(3, 2.0, n),
    "cauchy": lambda r, n: r.standard_t(1, n),
    "few_integers": lambda r, n: r.poisson(4.0, n).astype(float),
    "wide_integers": lambda r, n: r.integers(-(10**7), 10**7, n).astype(float),
    # integers over more than 65,536 values but fewer than 4 a value: one cell per integer
    # would not fit a cell's two-byte code
    "integers_150k": lambda r, n: r.integers(0, 150_000, n).astype(float),
    "ids": lambda r, n: r.permutation(n).astype(float),
    "halves": lambda r, n: r.integers(-4, 5, n) * 0.5,
    "constant": lambda r, n: np.full(n, 7.25),
    "two_values": lambda r, n: np.where(r.random(n) < 0.2, -1.5, 3.0),
    "huge": lambda r, n: r.uniform(-1, 1, n) * 1.7e308,  # max - min overflows
    "large": lambda r, n: r.normal(size=n) * 1e300,
    "tiny": lambda r, n: r.normal(size=n) * 1e-310,  # subnormal: cells / range overflows
    "spike": lambda r, n: np.where(r.random(n) < 0.9, 0.0, r.normal(size=n)),
    "outlier": lambda r, n: np.concatenate([r.uniform(0, 1, max(n - 1, 0)), [1e12]])[:n],
    "many_at_max": lambda r, n: np.minimum(r.normal(size=n), 0.5),
    "cents": lambda r, n: np.round(r.exponential(20, n), 2),
    "near_ties": lambda r, n: 1.0 + r.integers(0, 3, n) * np.finfo(float).eps,
}
SIZES = [1, 2, 3, 17, 4_096, 4_097, 10_000, 65_537, 200_000]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_edges_and_histograms_are_those_of_a_full_sort(shape: str, size: int) -> None:
    rng = np.random.default_rng(size)
    x = SHAPES[shape](rng, size)
    xs = np.sort(x)
    expected = sorted_edges(xs)
    bins, stats = NumericStats.fit(x)
    # bit for bit: the same floats (tobytes tells -0.0 from 0.0), the same counts
    assert bins.edges.tobytes() == expected.tobytes()
    assert stats.hist.tolist() == sorted_counts(xs, expected).tolist()
    assert (stats.min, stats.max) == (float(xs[0]), float(xs[-1]))
    assert np.signbit(stats.min) == np.signbit(xs[0])
    # a window of another draw on the reference's edges, and the edges of other bin counts
    window = SHAPES[shape](np.random.default_rng(size + 1), max(size // 5, 1))
    assert bins.count(window).tolist() == sorted_counts(np.sort(window), expected).tolist()
    for n_bins in (2, 7, 1000):
        assert NumericBins.fit(x, n_bins).edges.tobytes() == sorted_edges(xs, n_bins).tobytes()


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_rank_and_every_count_below(shape: str) -> None:
    """Each rank's value and the count below each value (and its neighbours): a selection
    off by one anywhere fails here."""
    x = SHAPES[shape](np.random.default_rng(5), 30_000)
    xs = np.sort(x)
    view = order_view(x)
    assert view.at(np.arange(x.size)).tobytes() == xs.tobytes()
    probes = np.concatenate(
        [xs, np.nextafter(xs, math.inf), np.nextafter(xs, -math.inf), [xs[0] - 1, xs[-1] + 1]]
    )
    probes = probes[np.isfinite(probes)]
    assert view.below(probes).tolist() == np.searchsorted(xs, probes, side="left").tolist()


def test_the_cells_are_what_is_used_and_each_way_is_taken() -> None:
    """The cases above go through the cells (not a sort in disguise): integers one cell each,
    a sample's few levels, a spike split on its own, and the sorts kept for what cells cannot
    split."""
    rng = np.random.default_rng(0)

    def view(shape: str) -> select.OrderView:
        x = SHAPES[shape](rng, 100_000)
        v = order_view(x)
        NumericBins.from_view(v).count_view(v)  # the queries a profile makes
        return v

    normal = view("normal")
    assert isinstance(normal, select._Cells)
    assert normal._light.size < 10_000  # a few thousand of 100,000 values gathered
    integers = view("few_integers")
    assert isinstance(integers, select._Cells) and not np.isnan(integers._value).all()
    assert integers._light.size == 0
    halves = view("halves")
    assert isinstance(halves, select._Cells) and halves._light.size == 0
    spike = view("spike")
    assert isinstance(spike, select._Cells) and spike._dense_views
    assert isinstance(view("huge"), select._Sorted)
    assert isinstance(view("tiny"), select._Sorted)


def test_negative_zero_and_non_finite_values_in_a_column() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=50_000)
    x[rng.random(x.size) < 0.1] = -0.0
    x[rng.random(x.size) < 0.05] = np.nan
    x[rng.random(x.size) < 0.01] = np.inf
    x[:3] = -np.inf
    finite = np.sort(x[np.isfinite(x)])
    bins, stats = NumericStats.fit(x)
    assert bins.edges.tobytes() == sorted_edges(finite).tobytes()
    assert stats.hist.tolist() == sorted_counts(finite, bins.edges).tolist()
    assert (stats.count, stats.min, stats.max) == (finite.size, finite[0], finite[-1])
    assert stats.non_finite == int(np.isinf(x).sum()) and stats.nulls == int(np.isnan(x).sum())
    # only negative zeros: the edge at the minimum keeps its sign, as the sort gave it
    zeros = np.concatenate([np.full(10_000, -0.0), rng.uniform(0, 1, 10_000)])
    edges = NumericBins.fit(zeros).edges
    assert edges.tobytes() == sorted_edges(np.sort(zeros)).tobytes() and np.signbit(edges[0])


def test_the_callers_values_are_not_modified() -> None:
    x = np.random.default_rng(2).normal(size=100_000)
    before = x.copy()
    NumericStats.fit(x)
    assert np.array_equal(x, before)
