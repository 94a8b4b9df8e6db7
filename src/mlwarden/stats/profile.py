"""Profiles: mergeable, bounded-memory summaries of a set of prediction records.

A :class:`Profile` summarises a window of records — its features, predictions, scores, labels,
latencies, errors and time range — in a size that does not grow with the number of records.
Profiles of two partitions merge into the profile of their union, so the same code profiles a
window in one go, a stream chunk by chunk, or partitions on many cores.

The bins are fixed by the reference (:class:`ProfileLayout`), not by each window:

* numeric features: the reference's quantiles (100 bins by default, exact: the order
  statistics of every finite value of the reference, found by bucket selection rather than a
  sort, ``mlwarden.stats.select``; a lake's reference fixes them from its first 200,000 rows,
  ``monitor.lake``), plus two open ends — below the reference minimum and above the
  reference maximum — so any window histogram is comparable with the reference's and merges by
  adding counts. Count, nulls, non-finite values, type violations (strings that are not numbers),
  min, max, and mean/M2 merged with Chan et al.'s parallel update ("Updating formulae and a
  pairwise algorithm for computing sample variances", 1979).
* quantiles of a window are derived from that fixed-bin histogram (linear inside a bin): the
  rank error is at most one reference bin (1 % of the reference mass by default). This was
  chosen over a separate t-digest/KLL because drift tests need the histogram anyway, and a
  histogram on shared bins merges exactly, associatively and in any order.
* categorical features: counts of the reference's most frequent levels (at most 50), an
  "other" bucket for levels the reference saw beyond that cap, and counts of unseen levels
  (at most 50 names kept, the rest in one bucket).
* text features: lengths on bins of the reference's length quantiles, empty values, and tokens
  against the reference's vocabulary (``mlwarden.stats.text``).
* latency: a DDSketch-style log histogram (``mlwarden.stats.sketch``) for p50/p95/p99 with 1 %
  relative accuracy, whatever the range.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> frame = pd.DataFrame({"x": rng.normal(size=1000), "c": rng.choice(["a", "b"], size=1000)})
>>> layout = ProfileLayout.fit(frame)
>>> whole = Profile.from_data(frame, layout)
>>> parts = Profile.from_data(frame[:400], layout).merge(Profile.from_data(frame[400:], layout))
>>> parts.rows, bool(np.array_equal(parts.features["x"].hist, whole.features["x"].hist))
(1000, True)
>>> Profile.from_dict(whole.to_dict()).rows
1000
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd

from mlwarden.domain import FeatureType, ModelSpec, Task
from mlwarden.errors import InvalidInput
from mlwarden.lazy import lazy_module
from mlwarden.stats.select import OrderView, order_view
from mlwarden.stats.sketch import LogSketch
from mlwarden.stats.text import TextLayout, TextStats, is_free_text

if TYPE_CHECKING:
    import polars as pl
else:
    pl = lazy_module("polars")  # imported when used: see mlwarden.lazy

__all__ = [
    "CategoricalStats",
    "Columns",
    "DataLike",
    "Levels",
    "NumericBins",
    "NumericStats",
    "Profile",
    "ProfileLayout",
    "profile_chunks",
]

# a string: evaluated, it would import Polars with this module (see mlwarden.lazy)
DataLike: TypeAlias = (
    "pd.DataFrame | pl.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]]"
)

DEFAULT_BINS = 100
# Below this many rows, columns are profiled one after the other: threads would cost more than
# they save. Above it, columns are profiled on all cores (NumPy's passes over whole arrays and
# Polars' counting release the GIL), which is how one window of a million rows stays near memory
# speed.
PARALLEL_ROWS = 50_000
DEFAULT_MAX_LEVELS = 50
MAX_UNSEEN_NAMES = 50
# Levels the reference saw beyond the counted cap are remembered by name up to this many, so
# that a window's level can still be told "known but rare" from "never seen".
MAX_KNOWN_LEVELS = 10_000


@dataclass(frozen=True)
class Columns:
    """Names of the non-feature columns of a record table (id, times, the answer and its scores,
    the label, latency and error); every other column is a feature."""

    id: str = "id"
    timestamp: str = "timestamp"
    prediction: str = "prediction"
    score: str = "score"
    proba_prefix: str = "proba_"
    label: str = "label"
    latency: str = "latency_ms"
    error: str = "error"
    received_at: str = "received_at"

    def is_reserved(self, name: str) -> bool:
        return name in {
            self.id,
            self.timestamp,
            self.received_at,
            self.prediction,
            self.score,
            self.label,
            self.latency,
            self.error,
        } or name.startswith(self.proba_prefix)

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- layouts (bins)


@dataclass(frozen=True)
class NumericBins:
    """Bin edges fixed by the reference.

    Bin 0 holds values below ``edges[0]`` (the reference minimum), bin ``i`` holds
    ``edges[i-1] <= x < edges[i]``, and the last bin values ``>= edges[-1]`` (just above the
    reference maximum). ``len(edges) + 1`` bins in all.
    """

    edges: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, bins: int = DEFAULT_BINS) -> NumericBins:
        """Edges at the exact quantiles of the finite values (plus min and just above max)."""
        return cls.from_view(order_view(values[np.isfinite(values)]), bins)

    @classmethod
    def from_view(cls, view: OrderView, bins: int = DEFAULT_BINS) -> NumericBins:
        """Edges from the order statistics of the values (see ``mlwarden.stats.select``)."""
        if view.size == 0:
            return cls(np.empty(0))
        # Linear-interpolated quantiles read from the order statistics (what np.quantile does).
        frac, ranks, low, high = _quantile_positions(view.size, bins)
        at = view.at(ranks)
        inner = at[low] + frac * (at[high] - at[low])
        lo, top = view.min, np.nextafter(view.max, math.inf)
        edges = np.unique(np.concatenate([[lo], inner[(inner > lo) & (inner < top)], [top]]))
        return cls(edges.astype(float))

    @property
    def n_bins(self) -> int:
        return int(self.edges.size + 1)

    def count(self, finite: np.ndarray) -> np.ndarray:
        """Histogram of finite values on these bins."""
        return self.count_view(order_view(finite))

    def count_view(self, view: OrderView) -> np.ndarray:
        """Histogram of the values of ``view`` on these bins: how many lie below each edge, so
        no value is located among the edges one by one."""
        pos = view.below(self.edges)
        return np.diff(np.concatenate([[0], pos, [view.size]])).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "numeric", "edges": self.edges.tolist()}


@dataclass(frozen=True)
class Levels:
    """Categorical levels fixed by the reference: counted ones, and known-but-rare ones."""

    levels: tuple[str, ...]
    known_other: frozenset[str] = frozenset()
    open_vocabulary: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {lvl: i for i, lvl in enumerate(self.levels)})

    @property
    def index(self) -> dict[str, int]:
        return self._index  # type: ignore[attr-defined,no-any-return]

    @classmethod
    def fit(cls, counts: Mapping[str, int], max_levels: int = DEFAULT_MAX_LEVELS) -> Levels:
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        top = tuple(name for name, _ in ordered[:max_levels])
        rest = [name for name, _ in ordered[max_levels:]]
        return cls(top, frozenset(rest[:MAX_KNOWN_LEVELS]), len(rest) > MAX_KNOWN_LEVELS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "categorical",
            "levels": list(self.levels),
            "known_other": sorted(self.known_other),
            "open_vocabulary": self.open_vocabulary,
        }


@functools.lru_cache(maxsize=32)
def _quantile_positions(
    size: int, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where the inner quantiles of ``size`` sorted values lie: the ranks to read (sorted,
    each once), and for each quantile the fraction of the way from the value at ``ranks[low]``
    to the one at ``ranks[high]``. The same for every column of a frame, so computed once per
    frame."""
    pos = np.linspace(0.0, 1.0, bins + 1)[1:-1] * (size - 1)
    below = np.floor(pos).astype(np.intp)
    above = np.minimum(below + 1, size - 1)
    frac = pos - below
    ranks = np.union1d(below, above)
    low, high = np.searchsorted(ranks, below), np.searchsorted(ranks, above)
    for array in (frac, ranks, low, high):
        array.flags.writeable = False  # shared by every caller
    return frac, ranks, low, high


FieldLayout = NumericBins | Levels | TextLayout


def _layout_from_dict(data: Mapping[str, Any]) -> FieldLayout:
    if data["type"] == "numeric":
        return NumericBins(np.asarray(data["edges"], dtype=float))
    if data["type"] == "text":
        return TextLayout.from_dict(data)
    return Levels(
        tuple(data["levels"]),
        frozenset(data.get("known_other", [])),
        data.get("open_vocabulary", False),
    )


@dataclass
class ProfileLayout:
    """The bins of every summarised column, fixed once by the reference and shared by windows."""

    features: dict[str, FieldLayout]
    outputs: dict[str, FieldLayout] = field(default_factory=dict)
    columns: Columns = field(default_factory=Columns)
    # inputs the model takes but does not use (``FeatureSpec.monitored`` false): neither
    # summarised nor counted as columns the layout does not know
    ignored: frozenset[str] = frozenset()

    @property
    def numeric_features(self) -> list[str]:
        return [n for n, f in self.features.items() if isinstance(f, NumericBins)]

    @property
    def categorical_features(self) -> list[str]:
        return [n for n, f in self.features.items() if isinstance(f, Levels)]

    @property
    def text_features(self) -> list[str]:
        return [n for n, f in self.features.items() if isinstance(f, TextLayout)]

    @classmethod
    def fit(
        cls,
        data: DataLike,
        spec: ModelSpec | None = None,
        *,
        bins: int = DEFAULT_BINS,
        max_levels: int = DEFAULT_MAX_LEVELS,
        columns: Columns | None = None,
    ) -> ProfileLayout:
        """Fix the bins from reference data: quantile edges per numeric column, top levels per
        categorical column. Feature types come from ``spec`` when given, else from the data."""
        if bins < 2:
            raise InvalidInput("bins must be at least 2")
        if max_levels < 1:
            raise InvalidInput("max_levels must be at least 1")
        return _fit_layout(data, spec, bins, max_levels, columns)[0]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "features": {k: v.to_dict() for k, v in self.features.items()},
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
            "columns": self.columns.to_dict(),
        }
        if self.ignored:
            out["ignored"] = sorted(self.ignored)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProfileLayout:
        return cls(
            {k: _layout_from_dict(v) for k, v in data["features"].items()},
            {k: _layout_from_dict(v) for k, v in data.get("outputs", {}).items()},
            Columns(**data.get("columns", {})),
            frozenset(data.get("ignored", ())),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProfileLayout):
            return NotImplemented
        return self.to_dict() == other.to_dict()


def _fit_layout(
    data: DataLike, spec: ModelSpec | None, bins: int, max_levels: int, columns: Columns | None
) -> tuple[ProfileLayout, dict[str, ColumnStats], dict[str, ColumnStats]]:
    """The layout, and the reference's own statistics computed in the same pass."""
    if bins < 2:
        raise InvalidInput("bins must be at least 2")
    if max_levels < 1:
        raise InvalidInput("max_levels must be at least 1")
    cols = columns or Columns()
    n, table = _table(data)
    if n == 0:
        raise InvalidInput("cannot fix profile bins from an empty reference")
    declared = {f.name: f.type for f in spec.features if f.monitored} if spec else {}
    ignored = frozenset(f.name for f in spec.features if not f.monitored) if spec else frozenset()
    names = list(declared) if spec else [c for c in table if not cols.is_reserved(c)]
    features: dict[str, FieldLayout] = {}
    feature_stats: dict[str, ColumnStats] = {}
    jobs = {}
    for name in names:
        col = table.get(name)
        ftype = declared.get(name) or (_infer_type(col) if col is not None else None)
        jobs[name] = lambda c=col, t=ftype: _fit_field(c, t, bins, max_levels, n)
    for name, (fl, st) in _run_columns(jobs, n).items():
        features[name], feature_stats[name] = fl, st
    outputs: dict[str, FieldLayout] = {}
    output_stats: dict[str, ColumnStats] = {}
    task = spec.task if spec else None
    for role, colname in (("prediction", cols.prediction), ("label", cols.label)):
        col = table.get(colname)
        if col is not None:
            if task is Task.CLASSIFICATION:
                ftype = FeatureType.CATEGORICAL
            elif task is Task.REGRESSION:
                ftype = FeatureType.NUMERIC
            else:
                ftype = _infer_type(col)
            outputs[role], output_stats[role] = _fit_field(col, ftype, bins, max_levels, n)
    score = _score_column(table, cols)
    if score is not None:
        values, _ = _float_values(score)
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            # Probabilities get fixed equal-width bins: comparable across models and versions.
            edges = np.linspace(0.0, 1.0, 21)
            edges[-1] = np.nextafter(1.0, math.inf)
            outputs["score"] = NumericBins(edges)
        else:
            outputs["score"] = NumericBins.fit(values, bins)
    return ProfileLayout(features, outputs, cols, ignored), feature_stats, output_stats


def _fit_field(
    col: Any, ftype: FeatureType | None, bins: int, max_levels: int, n_rows: int
) -> tuple[FieldLayout, ColumnStats]:
    if ftype is FeatureType.TEXT:
        text = TextLayout.fit(col if col is not None else [])
        return text, TextStats.reference(text, col, n_rows)
    if ftype in (FeatureType.CATEGORICAL, FeatureType.BOOLEAN):
        counted = _value_counts(col) if col is not None else ({}, 0)
        levels = Levels.fit(counted[0], max_levels)
        return levels, CategoricalStats.of(levels, col, n_rows, counted)
    if col is None:
        empty = NumericBins(np.empty(0))
        return empty, NumericStats.of(empty, None, n_rows)
    return NumericStats.fit(col, bins)


# --------------------------------------------------------------------------- column statistics


@dataclass
class NumericStats:
    """Mergeable summary of one numeric column on the reference's bins."""

    bins: NumericBins = field(repr=False)
    count: int = 0  # finite values
    nulls: int = 0  # None / NaN
    non_finite: int = 0  # +-inf
    invalid: int = 0  # values that are not numbers at all (e.g. "abc")
    absent: int = 0  # rows of chunks in which the column did not exist
    min: float = math.inf
    max: float = -math.inf
    mean: float = 0.0
    m2: float = 0.0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # the most consecutive rows holding one value, in the order given (see ``longest_run``)
    longest_run: int = 0

    def __post_init__(self) -> None:
        if self.hist.size == 0:
            self.hist = np.zeros(self.bins.n_bins, dtype=np.int64)

    @classmethod
    def of(cls, bins: NumericBins, col: Any, n_rows: int) -> NumericStats:
        if col is None:
            return cls(bins, absent=n_rows)
        out, view = cls._summary(bins, col)
        if view.size:
            out.hist = bins.count_view(view)
        return out

    @classmethod
    def fit(cls, col: Any, bins: int = DEFAULT_BINS) -> tuple[NumericBins, NumericStats]:
        """Fix bins from this column and summarise it on them, ordering its values only once."""
        out, view = cls._summary(NumericBins(np.empty(0)), col)
        fixed = NumericBins.from_view(view, bins)
        out.bins = fixed
        out.hist = fixed.count_view(view) if view.size else np.zeros(fixed.n_bins, dtype=np.int64)
        return fixed, out

    @classmethod
    def _summary(cls, bins: NumericBins, col: Any) -> tuple[NumericStats, OrderView]:
        """Counts and moments of a column, and the order of its finite values (what sorting
        them would tell, without sorting them all: ``mlwarden.stats.select``)."""
        values, invalid = _float_values(col)
        # a finite sum means every value is finite (a NaN or an infinity would carry into it):
        # the common column needs no mask and no count of its NaN, and its mean is this sum over
        # the count, which is what ``mean()`` computes (the same pairwise sum)
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, or an overflow
            total = values.sum() if values.size else np.float64(np.nan)
        if np.isfinite(total):
            n_finite, x, nan = values.size, values, 0
        else:
            finite_mask = np.isfinite(values)
            n_finite = int(finite_mask.sum())
            nan = int(np.isnan(values).sum())
            x = values if n_finite == values.size else values[finite_mask]
        out = cls(bins, count=n_finite, nulls=nan - invalid, invalid=invalid)
        out.non_finite = int(values.size - n_finite - nan)
        # ``longest_run`` of a float array, without its pass to tell an all-NaN column: the
        # counts above already tell it
        stretch = _longest_true_stretch(values[1:] == values[:-1])
        out.longest_run = 1 + stretch if stretch else int(values.size > nan)
        view = order_view(x)  # reads x: the caller's data, or a view of it
        if not n_finite:
            return out, view
        out.mean = float(total / n_finite) if x is values else float(x.mean())
        out.m2 = _centred_sum_of_squares(x, out.mean)
        out.min, out.max = view.min, view.max
        return out, view

    @property
    def rows(self) -> int:
        return self.count + self.nulls + self.non_finite + self.invalid + self.absent

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1); 0.0 with fewer than two values or when all are equal."""
        if self.count < 2 or self.max <= self.min:
            # Rounding leaves ~1e-19 in M2 for a constant column; "constant" must read as 0.
            return 0.0
        return self.m2 / (self.count - 1)

    @property
    def std(self) -> float:
        return math.sqrt(max(self.variance, 0.0))

    def merge(self, other: NumericStats) -> NumericStats:
        n = self.count + other.count
        out = NumericStats(
            self.bins,
            count=n,
            nulls=self.nulls + other.nulls,
            non_finite=self.non_finite + other.non_finite,
            invalid=self.invalid + other.invalid,
            absent=self.absent + other.absent,
            min=min(self.min, other.min),
            max=max(self.max, other.max),
            hist=self.hist + other.hist,
            # a run across the two parts is not seen: the longest is at least this
            longest_run=max(self.longest_run, other.longest_run),
        )
        if n:
            delta = other.mean - self.mean
            out.mean = self.mean + delta * other.count / n
            out.m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / n
        return out

    def quantile(self, q: float) -> float | None:
        """The q-quantile derived from the fixed-bin histogram (linear within a bin)."""
        if not 0.0 <= q <= 1.0:
            raise InvalidInput("quantile must be in [0, 1]")
        if self.count == 0:
            return None
        edges = self.bins.edges
        # Close the open end bins with this window's own extremes.
        grid = np.concatenate(
            [
                [min(self.min, edges[0]) if edges.size else self.min],
                edges,
                [max(self.max, edges[-1]) if edges.size else self.max],
            ]
        )
        cum = np.concatenate([[0], np.cumsum(self.hist)])
        rank = q * self.count
        i = int(np.searchsorted(cum, rank, side="left"))
        i = min(max(i, 1), self.hist.size)
        lo, hi = grid[i - 1], grid[i]
        inside = self.hist[i - 1]
        frac = (rank - cum[i - 1]) / inside if inside else 0.0
        value = lo + frac * (hi - lo)
        return float(min(max(value, self.min), self.max))

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "numeric",
            "count": self.count,
            "nulls": self.nulls,
            "non_finite": self.non_finite,
            "invalid": self.invalid,
            "absent": self.absent,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "mean": self.mean,
            "m2": self.m2,
            "hist": self.hist.tolist(),
            "longest_run": self.longest_run,
        }

    @classmethod
    def from_dict(cls, bins: NumericBins, data: Mapping[str, Any]) -> NumericStats:
        hist = np.asarray(data["hist"], dtype=np.int64)
        if hist.size != bins.n_bins:
            raise InvalidInput("stored histogram does not match the layout's bins")
        return cls(
            bins,
            count=int(data["count"]),
            nulls=int(data["nulls"]),
            non_finite=int(data["non_finite"]),
            invalid=int(data["invalid"]),
            absent=int(data["absent"]),
            min=math.inf if data["min"] is None else float(data["min"]),
            max=-math.inf if data["max"] is None else float(data["max"]),
            mean=float(data["mean"]),
            m2=float(data["m2"]),
            hist=hist,
            longest_run=int(data.get("longest_run", 0)),  # profiles stored before it: unknown
        )


@dataclass
class CategoricalStats:
    """Mergeable counts of one categorical column on the reference's levels."""

    levels: Levels = field(repr=False)
    nulls: int = 0
    absent: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    other: int = 0  # levels the reference knew beyond its counted cap
    unseen: dict[str, int] = field(default_factory=dict)
    unseen_other: int = 0  # unseen levels beyond the kept names
    # the most consecutive rows holding one value, in the order given (see ``longest_run``)
    longest_run: int = 0

    def __post_init__(self) -> None:
        if self.counts.size == 0 and self.levels.levels:
            self.counts = np.zeros(len(self.levels.levels), dtype=np.int64)

    @classmethod
    def of(
        cls,
        levels: Levels,
        col: Any,
        n_rows: int,
        counted: tuple[dict[str, int], int] | None = None,
    ) -> CategoricalStats:
        if col is None:
            return cls(levels, absent=n_rows)
        value_counts, nulls = counted if counted is not None else _value_counts(col)
        out = cls(levels, nulls=nulls, longest_run=longest_run(col))
        index = levels.index
        unseen: dict[str, int] = {}
        for name, c in value_counts.items():
            i = index.get(name)
            if i is not None:
                out.counts[i] += c
            elif name in levels.known_other or levels.open_vocabulary:
                out.other += c
            else:
                unseen[name] = unseen.get(name, 0) + c
        out.unseen, out.unseen_other = _cap_unseen(unseen, 0)
        return out

    @property
    def count(self) -> int:
        return int(self.counts.sum()) + self.other + self.unseen_count

    @property
    def unseen_count(self) -> int:
        return sum(self.unseen.values()) + self.unseen_other

    @property
    def rows(self) -> int:
        return self.count + self.nulls + self.absent

    def frequencies(self) -> dict[str, int]:
        """Counts by level name, with "__other__" and "__unseen__" buckets when non-zero."""
        out = {name: int(c) for name, c in zip(self.levels.levels, self.counts, strict=True)}
        if self.other:
            out["__other__"] = self.other
        if self.unseen_count:
            out["__unseen__"] = self.unseen_count
        return out

    def merge(self, other: CategoricalStats) -> CategoricalStats:
        unseen = dict(self.unseen)
        for name, c in other.unseen.items():
            unseen[name] = unseen.get(name, 0) + c
        kept, dropped = _cap_unseen(unseen, self.unseen_other + other.unseen_other)
        return CategoricalStats(
            self.levels,
            nulls=self.nulls + other.nulls,
            absent=self.absent + other.absent,
            counts=self.counts + other.counts,
            other=self.other + other.other,
            unseen=kept,
            unseen_other=dropped,
            longest_run=max(self.longest_run, other.longest_run),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "categorical",
            "nulls": self.nulls,
            "absent": self.absent,
            "counts": self.counts.tolist(),
            "other": self.other,
            "unseen": dict(self.unseen),
            "unseen_other": self.unseen_other,
            "longest_run": self.longest_run,
        }

    @classmethod
    def from_dict(cls, levels: Levels, data: Mapping[str, Any]) -> CategoricalStats:
        counts = np.asarray(data["counts"], dtype=np.int64)
        if counts.size != len(levels.levels):
            raise InvalidInput("stored counts do not match the layout's levels")
        return cls(
            levels,
            nulls=int(data["nulls"]),
            absent=int(data["absent"]),
            counts=counts if counts.size else np.zeros(0, dtype=np.int64),
            other=int(data["other"]),
            unseen={str(k): int(v) for k, v in data["unseen"].items()},
            unseen_other=int(data["unseen_other"]),
            longest_run=int(data.get("longest_run", 0)),  # profiles stored before it: unknown
        )


ColumnStats = NumericStats | CategoricalStats | TextStats


def longest_run(col: Any) -> int:
    """The most consecutive rows holding one value, in the order given; a null ends a run.

    Read in time order, a calendar column (the month of a flight, the season of a bike
    rental) holds one value for thousands of rows, so a window holding only one value is
    normal there, not a stuck feed; a reference in shuffled order has short runs only. The
    quality detector compares a constant window with this.

    >>> longest_run(np.array([1.0, 1.0, 2.0, 2.0, 2.0, np.nan, np.nan]))
    3
    >>> longest_run(pd.Series(["a", "a", None, "a"])), longest_run(pl.Series(["x"] * 4))
    (2, 4)
    """
    # A run of k equal values is k - 1 neighbours in a row that are equal, so the answer is
    # the longest stretch of "equal to the one before" plus one: one comparison of the column
    # with itself shifted, then work only on the (usually few) equal pairs. Counting the runs
    # themselves (run ids by ``cumsum``, then ``bincount``) cost about half of profiling a
    # numeric column (docs/benchmarks.md, "Drift check speed").
    if isinstance(col, pl.Series):
        if col.null_count() == col.len():
            return 0
        later, earlier = col.slice(1), col.slice(0, col.len() - 1)
        if col.null_count():  # null == null is not a run: nulls end runs
            same = later.eq_missing(earlier) & later.is_not_null()
        else:
            same = later == earlier
        if col.dtype.is_float():  # polars holds NaN equal to NaN; a NaN is a null here
            present = col.is_not_nan().fill_null(False)
            if not present.any():
                return 0
            same &= present.slice(1)
        return 1 + _longest_true_stretch(same.to_numpy())
    if isinstance(col, np.ndarray) and col.dtype.kind in "biuf":
        if col.size == 0:
            return 0
        # NaN equals nothing, so a null never extends a run
        longest = _longest_true_stretch(col[1:] == col[:-1])
        if longest:
            return 1 + longest
        return 1 if col.dtype.kind != "f" or not np.isnan(col).all() else 0
    series = col if isinstance(col, pd.Series) else pd.Series(col, dtype=object)
    values = series.to_numpy()
    present = ~pd.isna(values)
    if values.size == 0 or not present.any():
        return 0
    # a run starts where the value changes or a null ends; nulls are runs of length 0
    starts = np.ones(values.size, dtype=bool)
    starts[1:] = (values[1:] != values[:-1]) | ~present[:-1]
    run_id = np.cumsum(starts)
    return int(np.bincount(run_id[present]).max())


def _longest_true_stretch(flags: np.ndarray) -> int:
    """The most consecutive True values in ``flags`` (0 when none is True).

    >>> _longest_true_stretch(np.array([True, False, True, True, True, False, True]))
    3
    """
    where = np.flatnonzero(flags)
    if where.size == 0:
        return 0
    # positions of the True values; a stretch ends where the next True is not the next position
    ends = np.flatnonzero(np.diff(where) != 1)
    bounds = np.concatenate([[-1], ends, [where.size - 1]])
    return int(np.diff(bounds).max())


def _centred_sum_of_squares(x: np.ndarray, mean: float, block: int = 1 << 16) -> float:
    """M2 = sum((x - mean)^2), two-pass for accuracy, in cache-sized blocks: one temporary of a
    block instead of a full-size array (fresh memory costs page faults on every window).
    Not ``np.dot``: BLAS threads make it 40x slower on a busy machine."""
    total = 0.0
    with np.errstate(over="ignore"):  # values near 1e300: M2 is infinite, and says so
        for start in range(0, x.size, block):
            centred = x[start : start + block] - mean
            centred *= centred
            total += float(centred.sum())
    return total


def _cap_unseen(unseen: dict[str, int], dropped: int) -> tuple[dict[str, int], int]:
    if len(unseen) <= MAX_UNSEEN_NAMES:
        return unseen, dropped
    ordered = sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ordered[:MAX_UNSEEN_NAMES])
    return kept, dropped + sum(c for _, c in ordered[MAX_UNSEEN_NAMES:])


def _stats_of(layout: FieldLayout, col: Any, n_rows: int) -> ColumnStats:
    if isinstance(layout, NumericBins):
        return NumericStats.of(layout, col, n_rows)
    if isinstance(layout, TextLayout):
        return TextStats.of(layout, col, n_rows)
    return CategoricalStats.of(layout, col, n_rows)


def _stats_from_dict(layout: FieldLayout, data: Mapping[str, Any]) -> ColumnStats:
    if isinstance(layout, NumericBins):
        return NumericStats.from_dict(layout, data)
    if isinstance(layout, TextLayout):
        return TextStats.from_dict(layout, data)
    return CategoricalStats.from_dict(layout, data)


# --------------------------------------------------------------------------- the profile


@dataclass
class Profile:
    """A mergeable summary of a set of records on a fixed :class:`ProfileLayout`.

    ``features`` holds one :class:`NumericStats` or :class:`CategoricalStats` per feature of the
    layout; ``prediction``, ``score`` (the model's confidence: ``score`` or the largest
    ``proba_<class>``) and ``label`` likewise when the layout has them; ``latency`` is a
    :class:`LogSketch` in milliseconds; ``errors`` counts records with an error;
    ``extra_columns`` counts rows per column that the layout does not know (schema breaks).
    """

    layout: ProfileLayout
    rows: int = 0
    features: dict[str, ColumnStats] = field(default_factory=dict)
    outputs: dict[str, ColumnStats] = field(default_factory=dict)
    latency: LogSketch = field(default_factory=LogSketch)
    errors: int = 0
    time_min: float | None = None  # epoch seconds
    time_max: float | None = None
    extra_columns: dict[str, int] = field(default_factory=dict)

    # -- construction

    @classmethod
    def empty(cls, layout: ProfileLayout) -> Profile:
        return cls.from_data({}, layout)

    @classmethod
    def reference(
        cls,
        data: DataLike,
        spec: ModelSpec | None = None,
        *,
        bins: int = DEFAULT_BINS,
        max_levels: int = DEFAULT_MAX_LEVELS,
        columns: Columns | None = None,
    ) -> Profile:
        """Fix the layout from ``data`` and profile ``data`` on it, reading each column once."""
        layout, feature_stats, output_stats = _fit_layout(data, spec, bins, max_levels, columns)
        return cls.from_data(
            data, layout, _known={**feature_stats, **{f"\0{k}": v for k, v in output_stats.items()}}
        )

    @classmethod
    def from_data(
        cls,
        data: DataLike,
        layout: ProfileLayout,
        *,
        _known: Mapping[str, ColumnStats] | None = None,
    ) -> Profile:
        """Profile a DataFrame (pandas or polars), a dict of columns or a list of records."""
        n, table = _table(data)
        cols = layout.columns
        known = _known or {}
        out = cls(layout, rows=n)

        def job(name: str, fl: FieldLayout) -> Callable[[], ColumnStats]:
            return lambda: known.get(name) or _stats_of(fl, table.get(name), n)

        out.features = _run_columns(
            {name: job(name, fl) for name, fl in layout.features.items()}, n
        )
        sources = {
            "prediction": table.get(cols.prediction),
            "label": table.get(cols.label),
            "score": _score_column(table, cols),
        }
        out.outputs = {
            role: known.get(f"\0{role}") or _stats_of(fl, sources[role], n)
            for role, fl in layout.outputs.items()
        }
        latency = table.get(cols.latency)
        if latency is not None:
            out.latency.add(_float_values(latency)[0])
        error = table.get(cols.error)
        if error is not None:
            out.errors = _count_errors(error)
        stamp = table.get(cols.timestamp)
        if stamp is not None:
            out.time_min, out.time_max = _time_range(stamp)
        for name in table:
            in_layout = name in layout.features or name in layout.ignored
            if not in_layout and not cols.is_reserved(name):
                out.extra_columns[name] = n
        return out

    # -- access

    @property
    def prediction(self) -> ColumnStats | None:
        return self.outputs.get("prediction")

    @property
    def score(self) -> ColumnStats | None:
        return self.outputs.get("score")

    @property
    def label(self) -> ColumnStats | None:
        return self.outputs.get("label")

    def latency_percentiles(self) -> dict[str, float | None]:
        return {f"p{int(q * 100)}": self.latency.quantile(q) for q in (0.5, 0.95, 0.99)}

    # -- merging

    def merge(self, other: Profile) -> Profile:
        """The profile of the union of both sets of records (exact, except capped names)."""
        if other.layout is not self.layout and other.layout != self.layout:
            raise InvalidInput("cannot merge profiles built on different layouts (references)")
        extra = dict(self.extra_columns)
        for name, c in other.extra_columns.items():
            extra[name] = extra.get(name, 0) + c
        return Profile(
            self.layout,
            rows=self.rows + other.rows,
            features={k: _merge(v, other.features[k]) for k, v in self.features.items()},
            outputs={k: _merge(v, other.outputs[k]) for k, v in self.outputs.items()},
            latency=self.latency.merge(other.latency),
            errors=self.errors + other.errors,
            time_min=_opt(min, self.time_min, other.time_min),
            time_max=_opt(max, self.time_max, other.time_max),
            extra_columns=dict(sorted(extra.items())[:MAX_UNSEEN_NAMES]),
        )

    def __add__(self, other: Profile) -> Profile:
        return self.merge(other)

    # -- serialisation

    def to_dict(self, include_layout: bool = True) -> dict[str, Any]:
        """Plain JSON-able dict. Windows may omit the layout and be read back with their
        reference's layout, which keeps stored window profiles small."""
        out: dict[str, Any] = {
            "rows": self.rows,
            "features": {k: v.to_dict() for k, v in self.features.items()},
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
            "latency": self.latency.to_dict(),
            "errors": self.errors,
            "time_min": self.time_min,
            "time_max": self.time_max,
            "extra_columns": dict(self.extra_columns),
        }
        if include_layout:
            out["layout"] = self.layout.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], layout: ProfileLayout | None = None) -> Profile:
        if layout is None:
            if "layout" not in data:
                raise InvalidInput("this stored profile has no layout: pass its reference's layout")
            layout = ProfileLayout.from_dict(data["layout"])
        try:
            return cls(
                layout,
                rows=int(data["rows"]),
                features={
                    k: _stats_from_dict(layout.features[k], v) for k, v in data["features"].items()
                },
                outputs={
                    k: _stats_from_dict(layout.outputs[k], v) for k, v in data["outputs"].items()
                },
                latency=LogSketch.from_dict(data["latency"]),
                errors=int(data["errors"]),
                time_min=data.get("time_min"),
                time_max=data.get("time_max"),
                extra_columns={str(k): int(v) for k, v in data.get("extra_columns", {}).items()},
            )
        except KeyError as exc:
            raise InvalidInput(f"stored profile does not match the layout: missing {exc}") from exc


def profile_chunks(chunks: Iterable[DataLike], layout: ProfileLayout) -> Profile:
    """Profile a stream chunk by chunk; memory is that of one chunk plus one profile."""
    total = Profile.empty(layout)
    for chunk in chunks:
        total = total.merge(Profile.from_data(chunk, layout))
    return total


def _run_columns(jobs: Mapping[str, Callable[[], Any]], n_rows: int) -> dict[str, Any]:
    """Run one job per column, on all cores when the data is big enough to pay for threads."""
    workers = min(os.cpu_count() or 1, 8, len(jobs))
    if n_rows < PARALLEL_ROWS or workers < 2:
        return {name: job() for name, job in jobs.items()}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def _merge(a: ColumnStats, b: ColumnStats) -> ColumnStats:
    return a.merge(b)  # type: ignore[arg-type]


def _opt(fn: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(fn(a, b))


# --------------------------------------------------------------------------- input handling


def _table(data: DataLike) -> tuple[int, dict[str, Any]]:
    """Rows and columns (pandas Series, polars Series or NumPy arrays) of any accepted input."""
    if isinstance(data, pl.DataFrame):
        return data.height, {c: data.get_column(c) for c in data.columns}
    if isinstance(data, pd.DataFrame):
        return len(data), {str(c): data[c] for c in data.columns}
    if isinstance(data, Mapping):
        table: dict[str, Any] = {}
        lengths = set()
        for name, col in data.items():
            if isinstance(col, pd.Series | pl.Series):
                table[str(name)] = col
            else:
                arr = np.asarray(col) if not isinstance(col, np.ndarray) else col
                if arr.ndim != 1:
                    raise InvalidInput(f"column {name!r} must be one-dimensional")
                table[str(name)] = arr
            lengths.add(len(table[str(name)]))
        if len(lengths) > 1:
            raise InvalidInput(f"columns have different lengths: {sorted(lengths)}")
        return (lengths.pop() if lengths else 0), table
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        if not all(isinstance(r, Mapping) for r in data):
            raise InvalidInput("a list of records must hold dicts (one per record)")
        if not data:
            return 0, {}
        return _table(pd.DataFrame.from_records(list(data)))
    raise InvalidInput(
        f"cannot profile a {type(data).__name__}: pass a pandas or polars DataFrame, "
        "a dict of columns or a list of records"
    )


def _infer_type(col: Any) -> FeatureType:
    if isinstance(col, pl.Series):
        dt = col.dtype
        if dt == pl.Boolean:
            return FeatureType.BOOLEAN
        if dt.is_numeric():
            return FeatureType.NUMERIC
        return FeatureType.TEXT if is_free_text(col) else FeatureType.CATEGORICAL
    arr = col.to_numpy() if isinstance(col, pd.Series) and col.dtype.kind in "biuf" else col
    if isinstance(arr, np.ndarray) and arr.dtype.kind in "iuf":
        return FeatureType.NUMERIC
    if isinstance(arr, np.ndarray) and arr.dtype.kind == "b":
        return FeatureType.BOOLEAN
    series = col if isinstance(col, pd.Series) else pd.Series(col)
    if pd.api.types.is_bool_dtype(series.dtype):
        return FeatureType.BOOLEAN
    present = series.dropna()
    if present.empty:
        return FeatureType.NUMERIC
    if present.map(lambda v: isinstance(v, bool)).all():
        return FeatureType.BOOLEAN
    parsed = pd.to_numeric(present, errors="coerce")
    # A handful of stray strings in a numeric column are type violations, not a categorical.
    if parsed.notna().mean() >= 0.99:
        return FeatureType.NUMERIC
    return FeatureType.TEXT if is_free_text(present) else FeatureType.CATEGORICAL


def _as_float(col: Any) -> tuple[np.ndarray, int, int]:
    """Values as float64 (NaN where null or not a number), the null count and invalid count."""
    values, invalid = _float_values(col)
    return values, int(np.isnan(values).sum()) - invalid, invalid


def _float_values(col: Any) -> tuple[np.ndarray, int]:
    """Values as float64 (NaN where null or not a number) and the count of values that are not
    numbers; the nulls are the NaN values less that count. Counting them is the caller's pass
    to make: a column whose sum is finite has none, and needs no pass to say so."""
    if isinstance(col, pl.Series):
        before = col.null_count()
        if col.dtype == pl.Float64:
            values = col.to_numpy()  # no cast: a column without nulls is read in place
            invalid = 0
        elif col.dtype.is_numeric() or col.dtype == pl.Boolean:
            values = col.cast(pl.Float64).to_numpy()
            invalid = 0
        elif col.dtype in (pl.Utf8, pl.Categorical):
            cast = col.cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False)
            invalid = cast.null_count() - before
            values = cast.to_numpy()
        else:
            values = np.full(col.len(), np.nan)
            invalid = col.len() - before
        return np.asarray(values, dtype=float), invalid
    if isinstance(col, np.ndarray) and col.dtype.kind in "biuf":
        return col.astype(float, copy=False), 0
    series = col if isinstance(col, pd.Series) else pd.Series(col, dtype=object)
    if series.dtype.kind in "biuf":
        return series.to_numpy(dtype=float, na_value=np.nan), 0
    nulls_before = int(series.isna().sum())
    parsed = pd.to_numeric(series.map(_numberish), errors="coerce")
    values = parsed.to_numpy(dtype=float, na_value=np.nan)
    return values, int(np.isnan(values).sum()) - nulls_before


def _numberish(value: Any) -> Any:
    # Booleans and containers are not numbers in a numeric feature: make them violations.
    if isinstance(value, (bool, list | dict | tuple | set)):
        return "invalid"
    return value


def _value_counts(col: Any) -> tuple[dict[str, int], int]:
    """Counts by level name (as strings) and the number of nulls."""
    if isinstance(col, pl.Series):
        nulls = col.null_count()
        s = col
        if s.dtype.is_float():
            s = s.drop_nulls()
            s = s.filter(s.is_not_nan())
            nulls = col.len() - s.len()
            # integers that became floats because a null joined them (a failed call's
            # missing answer) keep the spelling they have without it: 1.0 is level "1"
            whole = (s == s.round(0)) & (s.abs() < 2**53)
            s = (
                pl.select(
                    pl.when(whole)
                    .then(s.cast(pl.Int64, strict=False).cast(pl.Utf8))
                    .otherwise(s.cast(pl.Utf8))
                )
                .to_series()
                .alias(s.name)
            )
        if s.dtype != pl.Utf8:
            s = s.cast(pl.Utf8)
        # Counting nulls as a level and dropping that row is cheaper than copying the column
        # without its nulls.
        vc = s.value_counts()
        counts = dict(zip(vc[:, 0].to_list(), vc[:, 1].to_list(), strict=True))
        counts.pop(None, None)
        return counts, nulls
    series = col if isinstance(col, pd.Series) else pd.Series(col, dtype=object)
    mask = series.isna()
    nulls = int(mask.sum())
    if nulls:
        series = series[~mask]
    vc = series.value_counts(sort=False)
    out: dict[str, int] = {}
    for name, c in zip(vc.index.tolist(), vc.to_numpy().tolist(), strict=True):
        if isinstance(name, float) and name.is_integer() and abs(name) < 2**53:
            name = int(name)  # as above: 1.0 is level "1"
        key = name if isinstance(name, str) else str(name)
        out[key] = out.get(key, 0) + int(c)
    return out, nulls


def _score_column(table: Mapping[str, Any], cols: Columns) -> Any:
    if cols.score in table:
        return table[cols.score]
    probas = [c for c in table if c.startswith(cols.proba_prefix)]
    if not probas:
        return None
    stacked = np.column_stack([_float_values(table[c])[0] for c in probas])
    with np.errstate(invalid="ignore"):
        all_nan = np.isnan(stacked).all(axis=1)
        best = np.where(
            all_nan, np.nan, np.nanmax(np.where(all_nan[:, None], 0.0, stacked), axis=1)
        )
    return best


def _count_errors(col: Any) -> int:
    series = col.to_pandas() if isinstance(col, pl.Series) else pd.Series(col, dtype=object)
    present = series.dropna()
    return int(sum(1 for v in present.tolist() if v not in ("", False, 0)))


def parsed_timestamps(series: pd.Series) -> pd.Series:
    """Datetimes or date texts as UTC timestamps (NaT when unreadable); a column of UTC
    timestamps already (the stored records') as it is, with no parsing."""
    if isinstance(series.dtype, pd.DatetimeTZDtype) and str(series.dtype.tz) == "UTC":
        return series
    return pd.to_datetime(series, utc=True, errors="coerce", format="mixed")


def _time_range(col: Any) -> tuple[float | None, float | None]:
    series = col.to_pandas() if isinstance(col, pl.Series) else pd.Series(col)
    if series.dtype.kind in "iuf":
        values = series.to_numpy(dtype=float, na_value=np.nan)
    else:
        stamps = parsed_timestamps(series)
        # Unit-agnostic (pandas 3 may hold microseconds): seconds since the epoch.
        seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        values = seconds.to_numpy(dtype=float, na_value=np.nan)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    return float(values.min()), float(values.max())
