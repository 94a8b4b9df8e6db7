"""A mergeable quantile sketch with relative accuracy, for latencies (DDSketch-style).

Method: logarithmic bucketing with a fixed ratio ``gamma = (1 + a) / (1 - a)`` between bucket
bounds, so every quantile is returned with a relative error of at most ``a`` (default 1 %).
Source: Masson, Rim & Lee, "DDSketch: A Fast and Fully-Mergeable Quantile Sketch with
Relative-Error Guarantees", VLDB 2019.

Why this and not a t-digest: the buckets are fixed by ``a`` alone, not by the data, so two
sketches merge by adding counts — exactly, associatively and in any order — which is what
per-window profiles stored in a database need. Memory is bounded by the value range, not by the
number of values: 1 µs .. 10⁷ ms at 1 % is under 1,500 buckets, stored sparsely.

Feature distributions do not use this sketch: their bins are fixed by the reference profile
(see ``mlwarden.stats.profile``), which is what drift tests compare.

>>> import numpy as np
>>> sketch = LogSketch()
>>> sketch.add(np.arange(1, 1001, dtype=float))
>>> round(sketch.quantile(0.5) / 500, 2)
1.0
>>> other = LogSketch(); other.add(np.array([5000.0]))
>>> sketch.merge(other).count
1001
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlwarden.errors import InvalidInput

__all__ = ["LogSketch"]

# Values at or below this are counted in the "zero" bucket: latencies under a nanosecond are
# measurement noise, and log-bucketing needs a positive floor.
_MIN_VALUE = 1e-6


class LogSketch:
    """Counts of positive values in logarithmic buckets; quantiles to ``relative_accuracy``."""

    def __init__(self, relative_accuracy: float = 0.01) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise InvalidInput("relative_accuracy must be in (0, 1)")
        self.relative_accuracy = relative_accuracy
        self._gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._log_gamma = math.log(self._gamma)
        self.counts: dict[int, int] = {}
        self.zeros = 0
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    def add(self, values: np.ndarray) -> None:
        """Add finite, non-negative values; NaN, infinite and negative values are ignored."""
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values) & (values >= 0)]
        if values.size == 0:
            return
        small = values <= _MIN_VALUE
        self.zeros += int(small.sum())
        positive = values[~small]
        if positive.size:
            keys = np.ceil(np.log(positive) / self._log_gamma).astype(np.int64)
            uniq, cnt = np.unique(keys, return_counts=True)
            for key, c in zip(uniq.tolist(), cnt.tolist(), strict=True):
                self.counts[key] = self.counts.get(key, 0) + c
        self.count += int(values.size)
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))

    def merge(self, other: LogSketch) -> LogSketch:
        """A new sketch holding the values of both (exact: counts add)."""
        if other.relative_accuracy != self.relative_accuracy:
            raise InvalidInput("cannot merge sketches of different relative accuracy")
        out = LogSketch(self.relative_accuracy)
        out.counts = dict(self.counts)
        for key, c in other.counts.items():
            out.counts[key] = out.counts.get(key, 0) + c
        out.zeros = self.zeros + other.zeros
        out.count = self.count + other.count
        out.min = min(self.min, other.min)
        out.max = max(self.max, other.max)
        return out

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 <= q <= 1) within the relative accuracy, or None when empty."""
        if not 0.0 <= q <= 1.0:
            raise InvalidInput("quantile must be in [0, 1]")
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        if rank < self.zeros:
            return 0.0
        seen = self.zeros
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen > rank:
                # The bucket (gamma^(k-1), gamma^k] is represented by the value whose relative
                # distance to both bounds is the same: that is what gives the accuracy bound.
                value = 2 * self._gamma**key / (self._gamma + 1)
                return float(min(max(value, self.min), self.max))
        return float(self.max)

    def to_dict(self) -> dict[str, Any]:
        return {
            "relative_accuracy": self.relative_accuracy,
            "counts": {str(k): v for k, v in sorted(self.counts.items())},
            "zeros": self.zeros,
            "count": self.count,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogSketch:
        out = cls(float(data["relative_accuracy"]))
        out.counts = {int(k): int(v) for k, v in data["counts"].items()}
        out.zeros = int(data["zeros"])
        out.count = int(data["count"])
        out.min = math.inf if data["min"] is None else float(data["min"])
        out.max = -math.inf if data["max"] is None else float(data["max"])
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogSketch):
            return NotImplemented
        return self.to_dict() == other.to_dict()
