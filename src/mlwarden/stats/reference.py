"""Reference profiles: the baseline every window is compared with.

A reference is a :class:`~mlwarden.stats.profile.Profile` whose layout (bins and levels) was
fixed from the reference data itself. It comes either from a version's training sample when the
version is registered (:func:`build_reference`), or from the first N production records
(:class:`ReferenceBuilder`, N = ``Settings.reference_size`` by default). Store it per version
with ``profile.to_dict()``; windows are then profiled with ``reference.layout``.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> training = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})
>>> build_reference(training).rows
500
>>> builder = ReferenceBuilder(size=300)
>>> builder.add(training[:200]) is None
True
>>> builder.add(training[200:]).rows
300
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from mlwarden.domain import ModelSpec
from mlwarden.errors import InvalidInput
from mlwarden.lazy import lazy_module
from mlwarden.stats.profile import (
    DEFAULT_BINS,
    DEFAULT_MAX_LEVELS,
    Columns,
    DataLike,
    Profile,
    _table,
)

if TYPE_CHECKING:
    import polars as pl
else:
    pl = lazy_module("polars")  # imported when used: see mlwarden.lazy

__all__ = ["ReferenceBuilder", "build_reference", "to_pandas"]


def build_reference(
    data: DataLike,
    spec: ModelSpec | None = None,
    *,
    bins: int = DEFAULT_BINS,
    max_levels: int = DEFAULT_MAX_LEVELS,
    columns: Columns | None = None,
) -> Profile:
    """Fix the bins from ``data`` (training sample or first production records) and profile it.

    ``data`` is a pandas or polars DataFrame, a dict of columns, or a list of record dicts.
    With ``spec`` the schema decides which columns are features and their types; without it
    every column that is not a reserved one (id, timestamp, prediction, score, proba_*, label,
    latency_ms, error) is a feature, typed from its values.
    """
    return Profile.reference(data, spec, bins=bins, max_levels=max_levels, columns=columns)


def to_pandas(data: DataLike) -> pd.DataFrame:
    """Any accepted input as a pandas DataFrame (used to keep bounded raw samples)."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pl.DataFrame):
        return data.to_pandas()
    _, table = _table(data)
    return pd.DataFrame(
        {k: (v.to_pandas() if isinstance(v, pl.Series) else v) for k, v in table.items()}
    )


class ReferenceBuilder:
    """Learns the reference from the first ``size`` production records.

    Feed it record batches with :meth:`add`; it keeps at most ``size`` rows (bounded memory)
    and returns the reference profile from the batch that completes it, then ``None`` again
    (the reference is fixed once learned).
    """

    def __init__(
        self,
        size: int | None = None,
        spec: ModelSpec | None = None,
        *,
        bins: int = DEFAULT_BINS,
        max_levels: int = DEFAULT_MAX_LEVELS,
        columns: Columns | None = None,
    ) -> None:
        if size is None:
            from mlwarden.settings import get_settings

            size = get_settings().reference_size
        if size < 2:
            raise InvalidInput("a reference needs at least 2 records")
        self.size = size
        self.spec = spec
        self._options: dict[str, Any] = {"bins": bins, "max_levels": max_levels, "columns": columns}
        self._parts: list[pd.DataFrame] = []
        self._rows = 0
        self.profile: Profile | None = None
        # The raw rows behind the reference, kept for detectors that need samples (the domain
        # classifier of ``mlwarden.detect.multivariate``); at most ``size`` rows.
        self.sample: pd.DataFrame | None = None

    @property
    def ready(self) -> bool:
        return self.profile is not None

    @property
    def remaining(self) -> int:
        return 0 if self.ready else self.size - self._rows

    def add(self, records: DataLike) -> Profile | None:
        """Add a batch; returns the reference profile when this batch completes it."""
        if self.ready:
            return None
        frame = to_pandas(records)
        take = frame.iloc[: self.remaining]
        if len(take):
            self._parts.append(take)
            self._rows += len(take)
        if self._rows < self.size:
            return None
        sample = pd.concat(self._parts, ignore_index=True)
        self._parts = []
        self.sample = sample
        self.profile = build_reference(sample, self.spec, **self._options)
        return self.profile
