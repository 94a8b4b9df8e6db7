"""Fixtures of the monitor's tests: ``write_lake`` writes a lake of Parquet prediction logs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

LakeWriter = Callable[..., Path]


def _day(rng: np.random.Generator, day: int, n: int, broken: bool) -> pa.Table:
    start = pd.Timestamp("2026-03-01") + pd.Timedelta(days=day)
    stamps = (start + pd.to_timedelta(np.sort(rng.uniform(0, 86_400, n)), unit="s")).to_numpy()
    x = rng.normal(0.4 if broken else 0.0, 1.0, n)
    x[rng.random(n) < 0.01] = np.nan
    colour = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]).astype(object)
    if broken:
        colour[rng.random(n) < 0.05] = "purple"  # a level the reference never saw
    amount = rng.integers(0, 1_000, n)
    score = 1 / (1 + np.exp(-2 * np.nan_to_num(x)))
    return pa.table(
        {
            "id": [f"d{day}-{i}" for i in range(n)],
            # microseconds: what Spark reads (it refuses Parquet's nanosecond timestamps)
            "timestamp": pa.array(stamps.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
            "x": x,
            "colour": colour.tolist(),
            "amount": pa.array(amount, mask=rng.random(n) < 0.02),
            "score": score,
            "prediction": (score > 0.5).astype(np.int64),
            "latency_ms": rng.lognormal(3, 0.3, n),
        }
    )


@pytest.fixture(scope="session")
def write_lake() -> LakeWriter:
    """``write_lake(root, days=3, rows=1000, files=2)``: ``days`` days of logs under
    ``root/date=YYYY-MM-DD/part-K.parquet``, ``rows`` per day split over ``files`` files; the
    last day drifts (``x`` shifted) and breaks (an unseen ``colour``)."""

    def write(root: Path, days: int = 3, rows: int = 1000, files: int = 2, seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        for day in range(days):
            table = _day(rng, day, rows, broken=day == days - 1 and days > 1)
            folder = root / f"date={(pd.Timestamp('2026-03-01') + pd.Timedelta(days=day)).date()}"
            folder.mkdir(parents=True, exist_ok=True)
            bounds = np.linspace(0, rows, files + 1).astype(int)
            for k in range(files):
                pq.write_table(
                    table.slice(bounds[k], bounds[k + 1] - bounds[k]),
                    folder / f"part-{k}.parquet",
                    row_group_size=rows // 4 or 1,
                )
        return root

    return write


def _same(a: object, b: object, path: str) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _same(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        # merged means and variances differ in the last bits with the order of the merges
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12, nan_ok=True), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture(scope="session")
def assert_same_json() -> Callable[[object, object], None]:
    """Equal JSON values, floats up to rounding (1e-9 relative)."""
    return lambda a, b: _same(a, b, "")
