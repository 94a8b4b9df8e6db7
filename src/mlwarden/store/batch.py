"""``RecordBatch``: prediction records held as columns, ready for the database.

Bulk capture produces thousands of records at once. Building a Python dict per record and
encoding its JSON one value at a time costs more than the database insert itself, so bulk
producers hand the store a Polars frame instead: ``Store.insert_records`` recognises a
``RecordBatch`` and sends its rows to the database as tuples built in Rust. To every other
caller it still looks like a sequence of record dicts (``len``, indexing, iteration), so the
record writer, label extraction and tests need nothing special.

Columns: ``id`` (str), ``model`` (str), ``ts_utc`` (UTC text "YYYY-MM-DD HH:MM:SS.ffffff"),
``version`` (int|null), ``features_json`` / ``prediction_json`` / ``scores_json`` (JSON text or
null), ``latency_ms`` (float|null), ``error`` (str|null), ``served_by`` (str) and optionally
``label``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

from mlwarden.lazy import lazy_module

if TYPE_CHECKING:
    import polars as pl
else:
    pl = lazy_module("polars")  # imported when used: see mlwarden.lazy

COLUMNS = (
    "id",
    "model",
    "ts_utc",
    "version",
    "features_json",
    "prediction_json",
    "scores_json",
    "latency_ms",
    "error",
    "served_by",
)


class RecordBatch(Sequence[dict[str, Any]]):
    """A columnar batch of records; see the module docstring for its columns."""

    def __init__(self, frame: pl.DataFrame) -> None:
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"a RecordBatch needs the columns {missing}")
        self.frame = frame

    def __len__(self) -> int:
        return self.frame.height

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> RecordBatch: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | RecordBatch:
        if isinstance(index, slice):
            start, stop, step = index.indices(self.frame.height)
            if step != 1:
                raise ValueError("a RecordBatch slices with step 1 only")
            return RecordBatch(self.frame.slice(start, stop - start))
        return self.frame.row(index, named=True)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.frame.iter_rows(named=True)

    def __repr__(self) -> str:
        return f"RecordBatch({self.frame.height} records)"


def json_column(expr: pl.Expr) -> pl.Expr:
    """Each value of ``expr`` as JSON text (null stays null), computed in Rust."""
    encoded = pl.struct(expr.alias("v")).struct.json_encode()
    return (
        pl.when(expr.is_null())
        .then(None)
        .otherwise(encoded.str.strip_prefix('{"v":').str.strip_suffix("}"))
    )
