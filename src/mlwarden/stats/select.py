"""Exact order statistics and ranks of a float array without sorting it.

A profile needs two things of a numeric column: the values at ~200 ranks (the exact
linear-interpolated quantile edges) and, for ~100 edges, how many values lie below each (the
histogram). Sorting every value answers both but costs O(n log n): ~40 ns a value where NumPy's
sort has no SIMD code for the CPU (an AMD EPYC with NumPy 2.4), while one arithmetic pass costs
well under 1 ns a value.

:func:`order_view` answers both exactly by bucket selection (the idea of Hoare's FIND and of
Floyd & Rivest, "Expected time bounds for selection", CACM 1975, with equal-width buckets in
place of sampled pivots): each value gets a cell ``trunc(clip((x - lo) * scale))``. Rounding is
monotone, so ``x <= y`` implies ``cell(x) <= cell(y)``: every value of a lower cell is smaller
than every value of a higher one. One ``bincount`` of the cells and its cumulative sum say which
cell holds a rank and how many values lie in the cells below a value's own; only the values of
the cells a query lands in are gathered (a second pass) and ordered: together by ``np.sort``
when they are few, by the same method when many, and a cell holding a large share of the values
(a spike, the bulk of a heavy tail) on its own, over its own range. The answers are those of
``np.sort``: the same values at the same ranks, the same counts below. (A zero's sign aside:
``-0.0 == 0.0``, and which of the two a sort put at a rank was arbitrary anyway.)

Cells need no gathering when each holds a single value: a column of integers over a short range
gets one cell per integer (counts, codes, calendar fields), and a sample of few distinct values
(halves, ratings) gets one cell per value, checked on every value while counting. ``lo`` and
``scale`` come from a strided sample bar its most extreme 1 %, so a few far outliers do not
squeeze the bulk into a few cells (values beyond go to the end cells). Cells are computed a
block at a time in buffers kept per thread (fresh full-length temporaries cost more in page
faults than the arithmetic on them) and kept as two-byte codes for the gathering pass.

>>> import numpy as np
>>> x = np.random.default_rng(0).lognormal(size=10_000)
>>> view = order_view(x)
>>> bool((view.at(np.array([0, 17, 5_000, 9_999])) == np.sort(x)[[0, 17, 5_000, 9_999]]).all())
True
>>> edges = np.array([0.5, 1.0, 2.0])
>>> bool((view.below(edges) == np.searchsorted(np.sort(x), edges, side="left")).all())
True
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator

import numpy as np

__all__ = ["OrderView", "order_view"]

# Below this many values, np.sort is as fast as the passes that avoid it.
SORT_BELOW = 4_096
# Values per cell on average: fewer cells cost less to count, more cells gather fewer values.
VALUES_PER_CELL = 4
# A gathered part is ordered by the same method at most this many times over.
MAX_DEPTH = 3
# A cell holding more than this share of the values (1/DENSE_SHARE) is split on its own.
DENSE_SHARE = 64
# At most this many cells (a cell's code fits two bytes): more cells gather fewer values, but
# cost more to count.
MAX_CELLS = 32_768
# Values sampled (by stride) to place the cells over the bulk of the data.
SAMPLE = 1_024


class OrderView:
    """What ``np.sort(x)`` would tell of finite values ``x``: the value at a rank, the count
    of values below a value, the minimum and the maximum, exactly, sorting none or few of them.
    ``x`` is read, never modified."""

    size: int
    min: float
    max: float

    def at(self, ranks: np.ndarray) -> np.ndarray:
        """``np.sort(x)[ranks]`` (ranks within ``[0, size)``)."""
        raise NotImplementedError

    def below(self, values: np.ndarray) -> np.ndarray:
        """``np.searchsorted(np.sort(x), values, side="left")``: how many are ``< value``."""
        raise NotImplementedError


class _Sorted(OrderView):
    """The plain way, for few values (or data the cells cannot split)."""

    def __init__(self, xs: np.ndarray) -> None:
        self.xs = xs
        self.size = int(xs.size)
        self.min, self.max = float(xs[0]), float(xs[-1])

    def at(self, ranks: np.ndarray) -> np.ndarray:
        values: np.ndarray = self.xs[ranks]
        return values

    def below(self, values: np.ndarray) -> np.ndarray:
        counts: np.ndarray = np.searchsorted(self.xs, values, side="left")
        return counts.astype(np.int64)


class _Cells(OrderView):
    """Values split into equal-width cells (see the module docstring)."""

    def __init__(
        self,
        x: np.ndarray,
        lo: float,
        scale: float,
        n_cells: int,
        bounds: tuple[float, float],
        depth: int,
        exact: bool = False,
        levels: np.ndarray | None = None,
    ) -> None:
        """``exact``: every cell holds one value, ``lo + cell`` (integers one apart).
        ``levels``: the values a sample showed, likely all there are (checked while counting)."""
        if n_cells > 1 << 16:  # a cell's code is two bytes
            raise ValueError(f"{n_cells} cells: at most 65,536")
        self.x, self.lo, self.scale, self.n_cells, self.depth = x, lo, scale, n_cells, depth
        self.size = int(x.size)
        self.min, self.max = bounds
        # The value of each cell known to hold a single one (NaN: not known to): every cell of
        # integers one apart, or of the few levels a sample showed (checked on every value).
        # Such a cell needs neither gathering nor ordering.
        self._value = lo + np.arange(n_cells, dtype=float) if exact else np.full(n_cells, np.nan)
        guess = None
        if levels is not None:
            level_cells = self._cells(levels)
            if np.unique(level_cells).size == levels.size:  # one level a cell
                guess = np.full(n_cells, np.nan)
                guess[level_cells] = levels
        counts = np.zeros(n_cells, dtype=np.int64)
        # every value's cell, kept in two bytes (at most 65,536 cells) for the gathering pass
        self._codes = np.empty(self.size, dtype=np.uint16)
        floats, cells_buffer = _buffers()
        for start in range(0, self.size, BLOCK):
            block = x[start : start + BLOCK]
            m = block.size
            t = self._scaled(block, floats[:m])
            np.copyto(self._codes[start : start + m], t, casting="unsafe")
            # two-byte codes widen faster than floats convert (bincount wants intp)
            cells = cells_buffer[:m]
            np.copyto(cells, self._codes[start : start + m])
            counts += np.bincount(cells, minlength=n_cells)
            if guess is not None and not np.array_equal(guess[cells], block):
                guess = None  # a value the sample missed: cells are looked at when gathered
        if guess is not None:
            self._value = guess
        self.counts = counts
        self.ends = np.cumsum(counts)
        self.starts = self.ends - counts
        # The cells gathered so far. A cell holding a large share of the values gets a view of
        # its own (finer cells over its own range: heavy tails, a spike); the values of the
        # others are ordered together, each cell's beginning at ``_light_starts``.
        self._taken = np.zeros(n_cells, dtype=bool)
        self._dense = counts > max(SORT_BELOW, self.size // DENSE_SHARE)
        self._dense_views: dict[int, OrderView] = {}
        self._light: OrderView = _EMPTY
        self._light_starts = np.zeros(n_cells, dtype=np.int64)

    def _scaled(self, values: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Where values fall on the cells, truncated later to a cell. Monotone in the value: a
        subtraction and a product by a positive number round monotonically, clipping and
        truncating towards zero keep the order."""
        np.subtract(values, self.lo, out=out)
        np.multiply(out, self.scale, out=out)
        np.clip(out, 0, self.n_cells - 1, out=out)
        return out

    def _cells(self, values: np.ndarray) -> np.ndarray:
        """The cells of a few values (queries)."""
        return self._scaled(values, np.empty(values.shape)).astype(np.intp)

    def _cells_by_block(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The values block by block with their cells (in this thread's buffer, valid until
        the next block)."""
        _, cells_buffer = _buffers()
        for start in range(0, self.size, BLOCK):
            block = self.x[start : start + BLOCK]
            cells = cells_buffer[: block.size]
            np.copyto(cells, self._codes[start : start + block.size])
            yield block, cells

    def at(self, ranks: np.ndarray) -> np.ndarray:
        cells = np.searchsorted(self.ends, ranks, side="right")
        out = self._value[cells]
        if not np.isnan(out).any():
            return out
        self._take(cells)
        within = ranks - self.starts[cells]  # the rank inside its cell
        light = np.isnan(out) & ~self._dense[cells]
        out[light] = self._light.at(within[light] + self._light_starts[cells[light]])
        for cell in np.unique(cells[self._dense[cells]]).tolist():
            mine = cells == cell
            out[mine] = self._dense_views[cell].at(within[mine])
        return out

    def below(self, values: np.ndarray) -> np.ndarray:
        out = np.where(values > self.max, self.size, 0).astype(np.int64)
        inside = (values > self.min) & (values <= self.max)
        if not inside.any():
            return out
        v = values[inside]
        cells = self._cells(v)
        # values of lower cells are all below v, of higher cells all above: only v's own cell
        # needs a look, and not even that when it holds one value (or none)
        counts = self.counts[cells]
        single = self._value[cells]
        inner = np.where(single < v, counts, 0)
        mixed = np.isnan(single) & (counts > 0)
        if mixed.any():
            self._take(cells[mixed])
            light = mixed & ~self._dense[cells]
            inner[light] = self._light.below(v[light]) - self._light_starts[cells[light]]
            for cell in np.unique(cells[mixed & self._dense[cells]]).tolist():
                mine = cells == cell
                inner[mine] = self._dense_views[cell].below(v[mine])
        out[inside] = self.starts[cells] + inner
        return out

    def _take(self, cells: np.ndarray) -> None:
        """Gather ``cells`` if they are not yet (one more pass over the values)."""
        new = cells[~self._taken[cells] & np.isnan(self._value[cells])]
        if new.size == 0:
            return
        self._taken[new] = True
        light = self._taken & ~self._dense & np.isnan(self._value)
        dense = np.zeros(self.n_cells, dtype=bool)
        dense[new] = self._dense[new]
        lights, denses, dense_cells = [], [], []
        for block, c in self._cells_by_block():
            lights.append(block[light[c]])
            if dense.any():
                mask = dense[c]
                denses.append(block[mask])
                dense_cells.append(c[mask])
        part = np.concatenate(lights)
        # a part holding most values is no smaller problem: order it by sorting
        depth = MAX_DEPTH if 4 * part.size > 3 * self.size else self.depth + 1
        self._light = order_view(part, depth)
        kept = np.where(light, self.counts, 0)
        self._light_starts = np.cumsum(kept) - kept
        if denses:
            values, where = np.concatenate(denses), np.concatenate(dense_cells)
            for cell in np.flatnonzero(dense).tolist():
                self._dense_views[cell] = order_view(values[where == cell], self.depth + 1)


# Values are turned into cells a block at a time in buffers kept per thread: a full-length
# temporary costs more in page faults (fresh memory every column) than the arithmetic on it.
BLOCK = 1 << 17
_scratch = threading.local()


def _buffers() -> tuple[np.ndarray, np.ndarray]:
    """This thread's buffers for a block: floats, and cells as intp."""
    buffers: tuple[np.ndarray, np.ndarray] | None = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = (np.empty(BLOCK), np.empty(BLOCK, dtype=np.intp))
    return buffers


class _Empty(OrderView):
    size = 0
    min, max = math.inf, -math.inf

    def at(self, ranks: np.ndarray) -> np.ndarray:
        if ranks.size:
            raise IndexError("no values")
        return np.empty(0)

    def below(self, values: np.ndarray) -> np.ndarray:
        return np.zeros(values.shape, dtype=np.int64)


_EMPTY = _Empty()


def order_view(x: np.ndarray, depth: int = 0) -> OrderView:
    """An :class:`OrderView` of finite float64 values ``x``: by cells when there are many,
    sorted when few (or when the cells cannot split them)."""
    x = np.asarray(x, dtype=float)  # no copy of float64 values
    n = int(x.size)
    if n == 0:
        return _EMPTY
    if n <= SORT_BELOW or depth >= MAX_DEPTH:
        return _Sorted(np.sort(x))
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:  # a constant: one cell, one value
        return _Cells(x, lo, 1.0, 1, (lo, hi), depth, exact=True)
    span = hi - lo
    if not math.isfinite(span):
        return _Sorted(np.sort(x))
    sample = x[:: max(1, n // SAMPLE)]
    if (
        # one cell per integer: as many cells as the two-byte codes and the counts allow
        span < min(4 * n, MAX_CELLS)
        and lo.is_integer()
        and np.array_equal(sample, np.trunc(sample))
        and _all_integers(x)
    ):
        # integers over a short range: one cell per integer, so every cell holds one value
        return _Cells(x, lo, 1.0, int(span) + 1, (lo, hi), depth, exact=True)
    ordered = np.sort(sample)
    levels = ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]
    # the cells span the sample bar its most extreme ~1 %: heavy tails (a few values far out)
    # would squeeze the bulk into few cells
    s_lo, s_hi = float(ordered[ordered.size // 128]), float(ordered[-1 - ordered.size // 128])
    if not s_lo < s_hi:
        s_lo, s_hi = lo, hi
    n_cells = max(2, min(n // VALUES_PER_CELL, MAX_CELLS))
    scale = n_cells / (s_hi - s_lo)
    if not math.isfinite(scale):  # a range of subnormals
        return _Sorted(np.sort(x))
    # a sample of few distinct values: the data likely holds those only (halves, ratings)
    few = levels if levels.size <= sample.size // 8 else None
    return _Cells(x, s_lo, scale, n_cells, (lo, hi), depth, levels=few)


def _all_integers(x: np.ndarray) -> bool:
    """Whether every value is a whole number (``x - lo`` then is exact, and so its cell)."""
    floats, _ = _buffers()
    for start in range(0, x.size, BLOCK):
        block = x[start : start + BLOCK]
        t = np.trunc(block, out=floats[: block.size])
        if not np.array_equal(t, block):
            return False
    return True
