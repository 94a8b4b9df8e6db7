"""What both lake engines run on each chunk of records: which window each record goes to,
and the profile of each window's records (``monitor.lake`` reads a lake on one machine,
``monitor.spark`` on a Spark cluster; this module is what they share)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from mlwarden.lazy import lazy_module
from mlwarden.monitor.window import timestamps_of
from mlwarden.stats.profile import Profile, ProfileLayout

if TYPE_CHECKING:
    import polars as pl
else:
    pl = lazy_module("polars")  # imported when used: see mlwarden.lazy

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "UNPLACED",
    "Progress",
    "Slots",
    "chunks_of",
    "earliest_ns",
    "frame_of",
    "merge_into",
    "profiles_by_slot",
]

# Rows profiled at once: large enough that profiling runs near memory speed (see
# ``stats.profile.PARALLEL_ROWS``), small enough that a chunk of a wide table fits anywhere.
DEFAULT_CHUNK_ROWS = 500_000
# The slot of records that belong to no window (no readable timestamp).
UNPLACED = -1

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Slots:
    """Which window (slot) each record goes to: all in slot 0, by time or by row number.

    Small and picklable: the Spark engine ships it to the executors, which call
    :meth:`of` on each chunk exactly as the Polars engine does.
    """

    kind: str = "all"  # "all", "time" or "count"
    timestamp: str = "timestamp"
    origin_ns: int | None = None  # time windows: the earliest timestamp, ns since the epoch
    duration_ns: int | None = None
    size: int | None = None  # count windows: records per window

    def of(self, frame: pl.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
        """Slot of every record of ``frame``; count windows need each record's row number."""
        if self.kind == "all":
            return np.zeros(frame.height, dtype=np.int64)
        if self.kind == "count":
            assert rows is not None and self.size is not None
            return np.asarray(rows, dtype=np.int64) // self.size
        assert self.origin_ns is not None and self.duration_ns is not None
        nanos = _epoch_ns(frame, self.timestamp)
        slots = np.full(frame.height, UNPLACED, dtype=np.int64)
        known = nanos != _NAT
        slots[known] = (nanos[known] - self.origin_ns) // self.duration_ns
        return slots


_NAT = np.iinfo(np.int64).min


def _epoch_ns(frame: pl.DataFrame, column: str) -> np.ndarray:
    """A column as nanoseconds since the epoch (``_NAT`` where unreadable), read as
    ``monitor.window.timestamps_of`` reads timestamps."""
    if column not in frame.columns:
        return np.full(frame.height, _NAT, dtype=np.int64)
    stamps = timestamps_of(frame.get_column(column).to_pandas())
    nanos = stamps.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    return np.asarray(nanos.to_numpy().view(np.int64))


def earliest_ns(frame: pl.DataFrame, column: str) -> int | None:
    """The earliest readable timestamp of a chunk, in ns since the epoch."""
    nanos = _epoch_ns(frame, column)
    nanos = nanos[nanos != _NAT]
    return int(nanos.min()) if nanos.size else None


def profiles_by_slot(
    frame: pl.DataFrame, slots: np.ndarray, layout: ProfileLayout
) -> dict[int, Profile]:
    """The profile of each slot's records of one chunk (the one place both engines profile)."""
    if frame.height == 0:
        return {}
    present = np.unique(slots)
    if present.size == 1:
        return {int(present[0]): Profile.from_data(frame, layout)}
    return {
        int(slot): Profile.from_data(frame.filter(pl.Series(slots == slot)), layout)
        for slot in present
    }


def merge_into(total: dict[int, Profile], parts: dict[int, Profile]) -> None:
    for slot, profile in parts.items():
        total[slot] = total[slot].merge(profile) if slot in total else profile


def frame_of(table: pa.Table) -> pl.DataFrame:
    """Arrow as the Polars frame the profile code reads (both engines come through here)."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def chunks_of(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Record batches regrouped into tables of about ``rows`` rows (the last may be smaller)."""
    buffer: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        buffer.append(batch)
        held += batch.num_rows
        if held >= rows:
            yield pa.Table.from_batches(buffer)
            buffer, held = [], 0
    if buffer:
        yield pa.Table.from_batches(buffer)
