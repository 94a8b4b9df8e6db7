"""Reference profiles and backtests over a lake of Parquet files, on one machine or on Spark.

Two engines read the files and profile them, and both call the same profile code
(``Profile.from_data`` on a Polars frame of Arrow record batches, then ``Profile.merge``): the
``polars`` engine reads the files one chunk after the other in this process, the ``spark``
engine (``monitor.spark``, the ``mlwarden[spark]`` extra) profiles each Spark partition on an
executor and merges the partitions' profiles in the cluster. Neither has a statistic of its
own, so both give the same profile (up to the rounding of merged means and variances) and the
same findings.

What is fixed the same way by both engines:

* **the bins of a reference** come from its first ``layout_rows`` records (200,000 by
  default) in file order — files sorted by path, rows in file order — since quantile edges
  need the values in one place; every record is then profiled on those bins.
* **time windows** (``1d``, ``1h`` ...) start at the stream's earliest timestamp, as
  ``monitor.window.iter_windows`` does; records without a readable timestamp are in no window
  (counted in a warning).
* **count windows** (``1000``) follow file order: the n-th record of the lake (files sorted by
  path, rows in file order) is in window ``n // size``.

A lake backtest runs the detectors that read profiles only (data drift per feature, data
quality, prediction drift and collapse): the others need raw rows (the domain classifier, the
latency, error and delay signals of the service stage, performance from labels) that a
profile does not hold. The run's warnings name the detectors it did not run.

>>> import tempfile, numpy as np, pandas as pd
>>> folder = tempfile.mkdtemp()
>>> rng = np.random.default_rng(0)
>>> for day in (1, 2):
...     pd.DataFrame({"x": rng.normal(size=500)}).to_parquet(f"{folder}/day{day}.parquet")
>>> profile_lake(f"{folder}/*.parquet").rows
1000
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlwarden.detect.base import DetectorContext, Input, Stage, WindowInputs
from mlwarden.detect.prediction import output_signals
from mlwarden.detect.registry import build_all
from mlwarden.errors import InvalidInput
from mlwarden.lazy import lazy_module
from mlwarden.monitor.backtest import BacktestResult
from mlwarden.monitor.chunks import (
    DEFAULT_CHUNK_ROWS,
    UNPLACED,
    Progress,
    Slots,
    chunks_of,
    earliest_ns,
    frame_of,
    merge_into,
    profiles_by_slot,
)
from mlwarden.monitor.engine import (
    MonitorConfig,
    WindowResult,
    empty_window,
    input_signals,
    run_stage,
    sanitize_signals,
)
from mlwarden.monitor.lake_options import DEFAULT_LAYOUT_ROWS, ENGINES
from mlwarden.monitor.window import WindowSpec
from mlwarden.stats.profile import Columns, Profile, ProfileLayout
from mlwarden.stats.text import TextLayout, TextStats

if TYPE_CHECKING:
    import polars as pl
else:
    pl = lazy_module("polars")  # imported when used: see mlwarden.lazy

__all__ = [
    "DEFAULT_LAYOUT_ROWS",
    "ENGINES",
    "Engine",
    "PolarsEngine",
    "backtest_lake",
    "get_engine",
    "profile_lake",
]

# What a detector may read in a lake backtest: profiles and what the detectors before it found.
PROFILE_INPUTS = frozenset({Input.PROFILES, Input.EARLIER_FINDINGS})


# --------------------------------------------------------------------------- engines


class Engine(Protocol):
    """What reads a lake: the first rows in file order, row counts, earliest time, profiles."""

    name: str

    def head(self, source: str, rows: int) -> pl.DataFrame: ...

    def row_counts(self, source: str) -> dict[str, int]: ...

    def earliest(self, source: str, column: str) -> int | None: ...

    def profiles(
        self, source: str, layout: ProfileLayout, slots: Slots, progress: Progress | None = None
    ) -> dict[int, Profile]: ...


class PolarsEngine:
    """One process: files in path order, ``chunk_rows`` records at a time."""

    name = "polars"

    def __init__(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        if chunk_rows < 1:
            raise InvalidInput("chunk_rows must be at least 1")
        self.chunk_rows = chunk_rows

    def files(self, source: str) -> list[str]:
        path = Path(source)
        if path.is_dir():
            found = sorted(
                str(p) for p in path.rglob("*.parquet") if not _hidden(p.relative_to(path))
            )
        else:
            found = sorted(
                f for f in glob.glob(source, recursive=True) if not _hidden(Path(f).name)
            )
        found = [f for f in found if Path(f).is_file()]
        if not found:
            raise InvalidInput(f"no Parquet file matches {source!r}")
        return found

    def _chunks(
        self, source: str, columns: list[str] | None = None
    ) -> Iterator[tuple[str, pl.DataFrame]]:
        for name in self.files(source):
            try:
                reader = pq.ParquetFile(name)
                wanted = (
                    None
                    if columns is None
                    else [c for c in columns if c in reader.schema_arrow.names]
                )
                batches = reader.iter_batches(batch_size=self.chunk_rows, columns=wanted)
                for table in chunks_of(batches, self.chunk_rows):
                    yield name, frame_of(table)
            except (pa.ArrowException, OSError) as exc:
                raise InvalidInput(f"cannot read Parquet file {name}: {exc}") from exc

    def head(self, source: str, rows: int) -> pl.DataFrame:
        parts: list[pl.DataFrame] = []
        got = 0
        for _, chunk in self._chunks(source):
            parts.append(chunk.head(rows - got))
            got += parts[-1].height
            if got >= rows:
                break
        return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()

    def row_counts(self, source: str) -> dict[str, int]:
        return {name: pq.ParquetFile(name).metadata.num_rows for name in self.files(source)}

    def earliest(self, source: str, column: str) -> int | None:
        first = [
            earliest_ns(chunk, column)
            for _, chunk in self._chunks(source, [column])
            if column in chunk.columns
        ]
        known = [f for f in first if f is not None]
        return min(known) if known else None

    def profiles(
        self, source: str, layout: ProfileLayout, slots: Slots, progress: Progress | None = None
    ) -> dict[int, Profile]:
        total: dict[int, Profile] = {}
        counts = self.row_counts(source)
        chunks = sum(-(-n // self.chunk_rows) for n in counts.values())
        row = 0
        for done, (_, chunk) in enumerate(self._chunks(source), start=1):
            rows = np.arange(row, row + chunk.height)
            row += chunk.height
            merge_into(total, profiles_by_slot(chunk, slots.of(chunk, rows), layout))
            if progress is not None:
                progress(done, chunks)
        return total


def _hidden(path: Path | str) -> bool:
    """Spark skips files and folders whose name starts with ``_`` or ``.`` (its own
    ``_SUCCESS`` markers, ``_temporary`` folders): so does this engine."""
    return any(part.startswith(("_", ".")) for part in Path(path).parts)


def get_engine(
    engine: str | Engine = "polars", master: str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Engine:
    """An engine by name; ``master`` (a Spark master URL) is for the Spark engine only."""
    if not isinstance(engine, str):
        return engine
    if engine == "polars":
        if master is not None:
            raise InvalidInput("--master is a Spark master URL: it needs --engine spark")
        return PolarsEngine(chunk_rows)
    if engine == "spark":
        from mlwarden.monitor.spark import SparkEngine

        return SparkEngine(master=master, chunk_rows=chunk_rows)
    raise InvalidInput(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")


# --------------------------------------------------------------------------- reference


def profile_lake(
    source: str,
    *,
    engine: str | Engine = "polars",
    master: str | None = None,
    columns: Columns | None = None,
    layout_rows: int = DEFAULT_LAYOUT_ROWS,
    progress: Progress | None = None,
) -> Profile:
    """A reference profile of every record of a Parquet lake (a path, folder or glob).

    The bins come from the first ``layout_rows`` records in file order; with a lake of at most
    that many records the profile is ``Profile.reference`` of all of them.
    """
    if layout_rows < 2:
        raise InvalidInput("layout_rows must be at least 2")
    eng = get_engine(engine, master)
    sample = eng.head(source, layout_rows)
    if sample.height == 0:
        raise InvalidInput(f"the lake {source!r} has no rows")
    layout = ProfileLayout.fit(sample, columns=columns or Columns())
    if not layout.features:
        raise InvalidInput(
            f"the lake {source!r} has no feature column (every column is a "
            f"reserved one: {', '.join(sample.columns)})"
        )
    profiles = eng.profiles(source, layout, Slots(), progress)
    profile = profiles.get(0, Profile.empty(layout))
    for name in layout.text_features:
        # the vocabulary came from the sample's even rows: its unknown words are counted on
        # the odd ones, as ``Profile.reference`` does (counted on every record, the even rows
        # would make the reference's rate too low and every window's look high)
        text_layout, stats = layout.features[name], profile.features[name]
        if name in sample.columns and isinstance(text_layout, TextLayout):
            held = TextStats.reference(text_layout, sample.get_column(name), sample.height)
            if isinstance(stats, TextStats):
                profile.features[name] = stats.with_tokens_of(held)
    return profile


def load_reference(
    reference: str | Profile, engine: Engine, columns: Columns | None, layout_rows: int
) -> Profile:
    """A profile as is, a profile JSON (``mlwarden profile --out``), or a lake to profile."""
    if isinstance(reference, Profile):
        return reference
    if reference.lower().endswith(".json"):
        path = Path(reference)
        if not path.is_file():
            raise InvalidInput(f"reference profile not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"cannot read reference profile {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidInput(f"reference profile {path} must hold a JSON object")
        return Profile.from_dict(data)
    return profile_lake(reference, engine=engine, columns=columns, layout_rows=layout_rows)


# --------------------------------------------------------------------------- backtest


def backtest_lake(
    reference: str | Profile,
    stream: str,
    window: WindowSpec | str | int = 1000,
    *,
    engine: str | Engine = "polars",
    master: str | None = None,
    config: MonitorConfig | None = None,
    columns: Columns | None = None,
    layout_rows: int = DEFAULT_LAYOUT_ROWS,
    progress: Progress | None = None,
) -> BacktestResult:
    """Monitor a lake of logged predictions window by window against ``reference``.

    ``reference`` is a :class:`Profile`, a profile JSON written by ``mlwarden profile``, or a
    lake to profile; the stream's column names are the reference's (its layout's columns).
    """
    spec = window if isinstance(window, WindowSpec) else WindowSpec.parse(window)
    eng = get_engine(engine, master)
    ref = load_reference(reference, eng, columns, layout_rows)
    cols = ref.layout.columns
    warnings: list[str] = []
    if spec.size is not None:
        counts = eng.row_counts(stream)
        total = sum(counts.values())
        slots = Slots("count", size=spec.size)
        windows = -(-total // spec.size)
    else:
        assert spec.duration is not None
        origin = eng.earliest(stream, cols.timestamp)
        if origin is None:
            raise InvalidInput(
                f"--window {spec.describe()} needs readable timestamps in the "
                f"column {cols.timestamp!r} of the stream"
            )
        slots = Slots("time", cols.timestamp, origin, int(spec.duration.value))
        windows = 0
    profiles = eng.profiles(stream, ref.layout, slots, progress)
    if not any(p.rows for p in profiles.values()):
        raise InvalidInput("the stream has no rows")
    unplaced = profiles.pop(UNPLACED, None)
    if unplaced is not None:
        warnings.append(
            f"{unplaced.rows} records without a readable timestamp in "
            f"{cols.timestamp!r}: in no window"
        )
    windows = max(windows, max(profiles, default=-1) + 1)
    detectors, skipped = _profile_detectors(config or MonitorConfig())
    if skipped:
        warnings.append(
            "a lake backtest runs the detectors that read profiles only; not run: "
            + ", ".join(skipped)
            + ", performance from labels, signal anomalies"
        )
    missing = sorted(
        {
            name
            for p in profiles.values()
            for name, stats in p.features.items()
            if p.rows and stats.absent == p.rows
        }
    )
    if missing:
        warnings.append(f"stream lacks reference features {missing}: reported as data quality")
    results = [_judge(ref, profiles.get(index), index, detectors) for index in range(windows)]
    findings = [f for r in results for f in r.findings]
    return BacktestResult(results, findings, warnings, spec.describe())


def _profile_detectors(config: MonitorConfig) -> tuple[list[Any], list[str]]:
    """The registered detectors the policy turns on that read profiles only, and the names of
    those that need more."""

    def reads_profiles(cls: type) -> bool:
        return bool(cls.needs <= PROFILE_INPUTS)  # type: ignore[attr-defined]

    settings = asdict(config)
    detectors = build_all(settings, DetectorContext(), include=reads_profiles)
    # The others as the policy configures them, to name only those it turns on (a detector
    # of samples is off without a reference sample: an empty one stands in for it here).
    others = build_all(
        settings,
        DetectorContext(reference_sample=pd.DataFrame()),
        include=lambda cls: not reads_profiles(cls),
    )
    return detectors, [d.name for d in others]


def _judge(
    reference: Profile, profile: Profile | None, index: int, detectors: list[Any]
) -> WindowResult:
    """One window's findings and signals from its profile, stage by stage as the monitor."""
    if profile is None or profile.rows == 0:
        return empty_window(index)
    signals: dict[str, Any] = {"n_records": float(profile.rows)}
    inputs = WindowInputs(reference, profile, index)
    findings = run_stage(detectors, Stage.INPUTS, inputs, signals)
    signals.update(input_signals(profile))
    findings += run_stage(detectors, Stage.OUTPUTS, inputs, signals)
    signals.update(output_signals(profile))
    return WindowResult(
        index,
        profile.rows,
        sanitize_signals(signals),
        findings,
        profile,
        profile.time_min,
        profile.time_max,
    )
