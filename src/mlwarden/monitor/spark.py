"""The Spark engine of a lake: every partition profiled on an executor, the profiles merged.

Each executor turns its partition's Arrow record batches into Polars frames and profiles them
with the same code as the Polars engine (``monitor.lake.profiles_by_slot``, that is
``Profile.from_data``); the partitions' profiles, one per window, travel as JSON and are merged
by window in the cluster (``reduceByKey`` over ``Profile.merge``), so the driver receives one
profile per window whatever the number of files or rows.

``pyspark`` is the optional extra ``mlwarden[spark]`` and is imported only when a Spark engine
is made. Nothing here assumes local mode: the files are listed, read and counted by Spark
(HDFS, S3, a local folder ... whatever the cluster reads), the master is any Spark master URL,
or the one ``spark-submit`` set when none is given. The executors need ``mlwarden`` installed
(the extra's dependencies: Polars, PyArrow, NumPy, pandas).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from mlwarden.errors import InvalidInput, ServiceUnavailable
from mlwarden.monitor.chunks import (
    DEFAULT_CHUNK_ROWS,
    Progress,
    Slots,
    chunks_of,
    earliest_ns,
    frame_of,
    merge_into,
    profiles_by_slot,
)
from mlwarden.stats.profile import Profile, ProfileLayout

__all__ = ["SparkEngine", "spark_session"]

# Columns the engine adds to find each record's row number (count windows); named so that no
# log's own column is taken.
_FILE = "__mlwarden_file"
_ROW = "__mlwarden_row"


def _pyspark() -> Any:
    try:
        import pyspark.sql
    except ImportError:
        raise ServiceUnavailable(
            'the Spark engine is an optional extra: pip install "mlwarden[spark]" '
            "(and Java 17 or later)"
        ) from None
    return pyspark.sql


def spark_session(master: str | None = None, app_name: str = "mlwarden") -> Any:
    """A Spark session on ``master`` (``local[2]``, ``spark://host:7077``, ``yarn``,
    ``k8s://https://...``), or on the master ``spark-submit`` set when it is None."""
    sql = _pyspark()
    builder = sql.SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    # The command line shows its own progress; Spark's console bar would garble it.
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    if master and master.startswith("local"):
        # A local master's Python workers run on this machine: this interpreter, the one
        # mlwarden is installed in, unless PYSPARK_PYTHON says otherwise (PySpark reads only
        # that variable, when the context starts; its default is whatever `python3` is on the
        # PATH). A cluster's workers use the interpreter its own configuration names.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        raise ServiceUnavailable(
            f"cannot start Spark on {master or 'the default master'}: {exc}"
        ) from exc
    # Spark warns, with a Java stack trace, about every glob it first looks up as a folder.
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkEngine:
    """Reads and profiles a lake with Spark; ``session`` or a ``master`` URL."""

    name = "spark"

    def __init__(
        self,
        session: Any = None,
        *,
        master: str | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        if chunk_rows < 1:
            raise InvalidInput("chunk_rows must be at least 1")
        if session is not None and master is not None:
            raise InvalidInput("pass a Spark session or a master URL, not both")
        self.spark = session if session is not None else spark_session(master)
        self.chunk_rows = chunk_rows

    def _reader(self) -> Any:
        # Every file under a folder, and no column made of `key=value` folder names: what the
        # Polars engine reads too.
        return self.spark.read.option("recursiveFileLookup", "true")

    def _read(self, source: str) -> Any:
        try:
            return self._reader().parquet(source)
        except Exception as exc:
            # AnalysisException (no such path, not Parquet) and the cluster's own IO errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidInput(f"Spark cannot read {source!r}: {first}") from exc

    def head(self, source: str, rows: int) -> pl.DataFrame:
        # Reading one file at a time keeps the rows in file order, which a read of the
        # whole lake followed by a limit does not promise.
        parts: list[pl.DataFrame] = []
        got = 0
        for name in sorted(self._read(source).inputFiles()):
            parts.append(frame_of(self._reader().parquet(name).limit(rows - got).toArrow()))
            got += parts[-1].height
            if got >= rows:
                break
        return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()

    def row_counts(self, source: str) -> dict[str, int]:
        from pyspark.sql import functions as F

        frame = self._read(source).select(F.col("_metadata.file_path").alias(_FILE))
        return {row[0]: int(row[1]) for row in frame.groupBy(_FILE).count().collect()}

    def earliest(self, source: str, column: str) -> int | None:
        from pyspark.sql import functions as F

        frame = self._read(source)
        if column not in frame.columns:
            return None
        chunk_rows = self.chunk_rows

        def firsts(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for table in chunks_of(batches, chunk_rows):
                yield pa.RecordBatch.from_pydict(
                    {"t": pa.array([earliest_ns(frame_of(table), column)], pa.int64())}
                )

        row = frame.select(column).mapInArrow(firsts, "t long").agg(F.min("t")).collect()[0]
        return None if row[0] is None else int(row[0])

    def profiles(
        self, source: str, layout: ProfileLayout, slots: Slots, progress: Progress | None = None
    ) -> dict[int, Profile]:
        from pyspark.sql import functions as F

        frame = self._read(source)
        offsets: dict[str, int] | None = None
        if slots.kind == "count":
            counts = self.row_counts(source)
            names = sorted(counts)
            starts = np.cumsum([0] + [counts[n] for n in names[:-1]])
            offsets = {n: int(s) for n, s in zip(names, starts, strict=True)}
            frame = frame.select(
                "*",
                F.col("_metadata.file_path").alias(_FILE),
                F.col("_metadata.row_index").alias(_ROW),
            )
        layout_json = json.dumps(layout.to_dict())
        chunk_rows = self.chunk_rows

        def per_partition(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            return _partition_profiles(batches, layout_json, slots, offsets, chunk_rows)

        merge = functools.partial(_merge_json, layout_json)
        parts = frame.mapInArrow(per_partition, "slot long, profile string")
        with _JobProgress(self.spark, progress):
            merged = parts.rdd.map(lambda row: (row[0], row[1])).reduceByKey(merge).collect()
        return {int(slot): Profile.from_dict(json.loads(text), layout) for slot, text in merged}


def _partition_profiles(
    batches: Iterable[pa.RecordBatch],
    layout_json: str,
    slots: Slots,
    offsets: dict[str, int] | None,
    chunk_rows: int,
) -> Iterator[pa.RecordBatch]:
    """On an executor: one profile per window of the partition's records, as JSON."""
    layout = _layout(layout_json)
    total: dict[int, Profile] = {}
    for table in chunks_of(batches, chunk_rows):
        rows = None
        if offsets is not None:
            files = table.column(_FILE).combine_chunks().dictionary_encode()
            starts = np.array(
                [offsets[name] for name in files.dictionary.to_pylist()], dtype=np.int64
            )
            rows = (
                starts[files.indices.to_numpy(zero_copy_only=False)] + table.column(_ROW).to_numpy()
            )
            table = table.drop_columns([_FILE, _ROW])
        frame = frame_of(table)
        merge_into(total, profiles_by_slot(frame, slots.of(frame, rows), layout))
    if total:
        keys = sorted(total)
        yield pa.RecordBatch.from_pydict(
            {
                "slot": pa.array(keys, pa.int64()),
                "profile": pa.array(
                    [json.dumps(total[k].to_dict(include_layout=False)) for k in keys], pa.string()
                ),
            }
        )


@functools.lru_cache(maxsize=4)
def _layout(layout_json: str) -> ProfileLayout:
    # One layout object per executor process: profiles merge only on the same layout, and
    # rebuilding it for every merge would cost more than the merge.
    return ProfileLayout.from_dict(json.loads(layout_json))


def _merge_json(layout_json: str, a: str, b: str) -> str:
    layout = _layout(layout_json)
    merged = Profile.from_dict(json.loads(a), layout).merge(
        Profile.from_dict(json.loads(b), layout)
    )
    return json.dumps(merged.to_dict(include_layout=False))


class _JobProgress:
    """Reports the finished tasks of the running Spark stages to ``progress`` while a job runs
    (Spark's status tracker, polled twice a second)."""

    def __init__(self, spark: Any, progress: Progress | None) -> None:
        self.tracker = spark.sparkContext.statusTracker()
        self.progress = progress
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> _JobProgress:
        if self.progress is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.progress is not None:
            self.thread.join()

    def _poll(self) -> None:
        assert self.progress is not None
        while not self.done.wait(0.5):
            stages = [self.tracker.getStageInfo(s) for s in self.tracker.getActiveStageIds()]
            stages = [s for s in stages if s is not None]
            if stages:
                self.progress(
                    sum(s.numCompletedTasks for s in stages), sum(s.numTasks for s in stages)
                )
