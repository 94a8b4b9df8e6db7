"""Bulk capture: records of a model served elsewhere, as JSON lines, CSV or Parquet.

Each row carries ``id`` (derived from the row's content when absent, see below), ``timestamp``
(ISO-8601 text or epoch seconds/milliseconds; now when absent), ``prediction``, ``score`` or
``proba_<class>`` columns (gathered into the ``scores`` dict), ``latency_ms``, ``error``,
``version``, an optional ``label`` (stored as feedback) and the features — every other column
(or a nested ``features`` object in JSON lines). Rows are checked against the model's schema
with the same rules as the gateway's ``predict`` (:mod:`mlwarden.capture.validation`): missing
or unknown feature, wrong type, NaN/infinity where a number is expected.

CSV and Parquet are read into columns (Polars) and checked a column at a time: a numeric column
of a numeric feature needs one vectorised finiteness test, and only columns whose type does not
already settle the question fall back to the per-value rules. That keeps a million-row Parquet
file well above 50,000 records/s end to end (see bench/bench_capture.py). JSON lines are
parsed line by line, because only there can a key be missing from one row and present in the
next, and "missing" must be told apart from null.

An upload is stored in one transaction: a failure or a kill halfway stores nothing. A row sent
without an id gets one derived from its content: a hash of the model, the row's time and
values, and how many identical rows came before it in the upload (a row without a time takes
the upload's own digest in its place, so it is not confused with an identical row of another
upload). A client that retries an upload whose answer it never got therefore stores each row
once, as ids it sent itself would.

>>> from mlwarden.domain import FeatureSpec, ModelSpec
>>> spec = ModelSpec(name="m", task="classification", features=[FeatureSpec(name="x")])
>>> body = b"id,x,prediction,proba_1\\na,1.5,1,0.9\\nb,oops,0,0.2\\n"
>>> rows, errors = parse_records(spec, body, "csv")
>>> [(r["id"], r["features_json"], r["scores_json"]) for r in rows]
[('a', '{"x":1.5}', '{"1":0.9}')]
>>> [(e.row, e.field, e.expected, e.received) for e in errors]
[(1, 'x', 'a number', 'oops')]
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from mlwarden.capture.validation import FieldError, SchemaValidator, errors_detail, parse_json
from mlwarden.domain import DEFAULT_TEXT_MAX_LENGTH, FeatureSpec, FeatureType, ModelSpec, Task
from mlwarden.errors import InvalidInput
from mlwarden.lazy import lazy_module
from mlwarden.store.batch import COLUMNS as BATCH_COLUMNS
from mlwarden.store.batch import RecordBatch, json_column

if TYPE_CHECKING:
    import polars as pl

    from mlwarden.store.repository import Store
    from mlwarden.store.writer import RecordWriter
else:
    pl = lazy_module("polars")  # imported when used: see mlwarden.lazy

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet")
# columns that describe the prediction, not the input (unless the schema names them a feature)
RESERVED = frozenset(
    {"id", "timestamp", "prediction", "score", "scores", "latency_ms", "error", "label", "version"}
)
PROBA_PREFIX = "proba_"
_EPOCH_MS_ABOVE = 1e11  # an epoch number above this is milliseconds (1e11 s is year 5138)

__all__ = [
    "FORMATS",
    "IngestReport",
    "detect_format",
    "ingest_records",
    "labels_of",
    "parse_records",
    "parse_timestamp",
]


# ----------------------------------------------------------------------------- helpers


def parse_timestamp(value: Any) -> datetime | None:
    """A UTC datetime from ISO-8601 text, epoch seconds or milliseconds, or a datetime.

    Returns None when ``value`` is none of these. Naive times are taken to be UTC.

    >>> parse_timestamp("2026-01-02T03:04:05+01:00").isoformat()
    '2026-01-02T02:04:05+00:00'
    >>> parse_timestamp(1_700_000_000_000) == parse_timestamp(1_700_000_000)
    True
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        seconds = value / 1000 if abs(value) > _EPOCH_MS_ABOVE else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        text = value.strip()
        try:
            return parse_timestamp(float(text))
        except ValueError:
            pass
        try:
            return parse_timestamp(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def detect_format(content_type: str | None = None, filename: str | None = None) -> Format:
    """The record format named by a Content-Type or a file name; ``InvalidInput`` otherwise."""
    kind = (content_type or "").split(";")[0].strip().lower()
    by_type: dict[str, Format] = {
        "application/x-ndjson": "jsonl",
        "application/jsonl": "jsonl",
        "application/jsonlines": "jsonl",
        "application/json": "jsonl",
        "text/csv": "csv",
        "application/csv": "csv",
        "application/vnd.apache.parquet": "parquet",
        "application/parquet": "parquet",
        "application/x-parquet": "parquet",
    }
    if kind in by_type:
        return by_type[kind]
    suffix = (filename or "").lower().rsplit(".", 1)[-1]
    by_suffix: dict[str, Format] = {
        "jsonl": "jsonl",
        "ndjson": "jsonl",
        "json": "jsonl",
        "csv": "csv",
        "parquet": "parquet",
        "pq": "parquet",
    }
    if suffix in by_suffix:
        return by_suffix[suffix]
    raise InvalidInput(
        f"cannot tell the record format from {content_type or filename or 'nothing'!r}; "
        "use JSON lines, CSV or Parquet"
    )


def labels_of(rows: Sequence[dict[str, Any]]) -> list[tuple[str, Any]]:
    """The (record id, label) pairs carried by parsed rows."""
    if isinstance(rows, RecordBatch):
        if "label" not in rows.frame.columns:
            return []
        labelled = rows.frame.select("id", "label").drop_nulls("label")
        return list(labelled.iter_rows())
    return [(row["id"], row["label"]) for row in rows if row.get("label") is not None]


class _UploadDigest:
    """The hash of a whole upload, computed once and only if a row needs it."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._value: str | None = None

    def __str__(self) -> str:
        if self._value is None:
            self._value = hashlib.blake2b(self._data, digest_size=16).hexdigest()
        return self._value


def _content_ids(model: str, keys: Iterable[str], occurrences: Iterable[int]) -> list[str]:
    """Record ids from row contents: ``keys`` holds each row's time and values, and
    ``occurrences`` how many rows with the same key came before it in the upload, so identical
    rows stay distinct records and a retried upload names each row as the first try did."""
    prefix = model.encode() + b"\x1f"
    return [
        hashlib.blake2b(
            prefix + key.encode() + b"\x1f" + str(n).encode(), digest_size=16
        ).hexdigest()
        for key, n in zip(keys, occurrences, strict=True)
    ]


def _error(row: int, name: str, expected: str, received: Any, message: str) -> FieldError:
    return FieldError(row, name, expected, received, message)


# ----------------------------------------------------------------------------- JSON lines


def _parse_jsonl(
    spec: ModelSpec, data: bytes, now: datetime
) -> tuple[list[dict], list[FieldError]]:
    validator = SchemaValidator(spec)
    feature_names = set(spec.feature_names)
    rows: list[dict[str, Any]] = []
    errors: list[FieldError] = []
    digest = _UploadDigest(data)
    unnamed: list[tuple[dict[str, Any], str]] = []  # rows sent without an id, and their key
    index = -1
    for line in data.splitlines():
        if not line.strip():
            continue
        index += 1
        try:
            # the API's one JSON reader: no NaN/Infinity, 1e999, integers past 64 bits or
            # documents nested past its limit, which a row could otherwise store
            item = parse_json(line)
        except InvalidInput as exc:
            errors.append(
                _error(
                    index,
                    "",
                    "a JSON object",
                    line[:200].decode("utf-8", "replace"),
                    f"row {index}: {exc.message}",
                )
            )
            continue
        if not isinstance(item, dict):
            errors.append(
                _error(index, "", "a JSON object", item, f"row {index}: expected a JSON object")
            )
            continue
        if isinstance(item.get("features"), dict) and "features" not in feature_names:
            features = item["features"]
        else:
            features = {
                k: v
                for k, v in item.items()
                if k in feature_names or (k not in RESERVED and not k.startswith(PROBA_PREFIX))
            }
        found = validator.errors(features, index)
        scores: Any = item.get("scores")
        if scores is None:
            probas = {
                k[len(PROBA_PREFIX) :]: v
                for k, v in item.items()
                if k.startswith(PROBA_PREFIX) and k not in feature_names
            }
            scores = probas or item.get("score")
        found.extend(_check_meta(index, item, scores))
        if found:
            errors.extend(found)
            continue
        ts = item.get("timestamp")
        record = {
            "id": str(item["id"]) if item.get("id") not in (None, "") else None,
            "model": spec.name,
            "version": item.get("version"),
            "timestamp": now if ts is None else parse_timestamp(ts),
            "features": features,
            "prediction": item.get("prediction"),
            "scores": scores,
            "latency_ms": item.get("latency_ms"),
            "error": item.get("error"),
        }
        if item.get("label") is not None:
            record["label"] = item["label"]
        if record["id"] is None:
            content = {k: v for k, v in item.items() if k not in ("id", "label")}
            key = json.dumps(content, sort_keys=True, separators=(",", ":"))
            unnamed.append((record, key if ts is not None else f"@{digest}{key}"))
        rows.append(record)
    if unnamed:
        seen: dict[str, int] = {}
        occurrences = []
        for _record, key in unnamed:
            occurrences.append(seen.get(key, 0))
            seen[key] = occurrences[-1] + 1
        ids = _content_ids(spec.name, (key for _r, key in unnamed), occurrences)
        for (record, _key), record_id in zip(unnamed, ids, strict=True):
            record["id"] = record_id
    return rows, errors


def _check_meta(index: int, item: dict[str, Any], scores: Any) -> list[FieldError]:
    """The non-feature fields of one JSON row: time, latency, version, id, scores."""
    found = []
    ts = item.get("timestamp")
    if ts is not None and parse_timestamp(ts) is None:
        found.append(
            _error(
                index,
                "timestamp",
                "an ISO-8601 time or epoch seconds",
                ts,
                f"row {index}: timestamp {ts!r} is not a time",
            )
        )
    latency = item.get("latency_ms")
    if latency is not None and (
        isinstance(latency, bool)
        or not isinstance(latency, int | float)
        or not math.isfinite(latency)
        or latency < 0
    ):
        found.append(
            _error(
                index,
                "latency_ms",
                "a finite number >= 0",
                latency,
                f"row {index}: latency_ms must be a finite number >= 0",
            )
        )
    version = item.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        found.append(
            _error(
                index, "version", "an integer", version, f"row {index}: version must be an integer"
            )
        )
    record_id = item.get("id")
    if record_id is not None and (
        not isinstance(record_id, str | int)
        or isinstance(record_id, bool)
        or len(str(record_id)) > 64
    ):
        found.append(
            _error(
                index,
                "id",
                "a string of at most 64 characters",
                record_id,
                f"row {index}: id must be a string of at most 64 characters",
            )
        )
    values = scores.values() if isinstance(scores, dict) else [scores]
    for value in values:
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            found.append(
                _error(
                    index,
                    "scores",
                    "finite numbers",
                    value,
                    f"row {index}: scores must be finite numbers",
                )
            )
            break
    return found


# ----------------------------------------------------------------------------- CSV / Parquet


@dataclass
class _Columns:
    """Per-row results of the column checks of one frame."""

    n: int
    bad: set[int] = field(default_factory=set)
    errors: list[FieldError] = field(default_factory=list)

    def add(
        self, rows: list[int], name: str, expected: str, received: list[Any], message: str
    ) -> None:
        for row, value in zip(rows, received, strict=True):
            self.bad.add(row)
            self.errors.append(_error(row, name, expected, value, f"row {row}: {message}"))


def _read_frame(data: bytes, fmt: Format) -> pl.DataFrame:
    try:
        if fmt == "parquet":
            return pl.read_parquet(io.BytesIO(data))
        # every CSV column as text first would be slow; infer over the whole file instead so a
        # late bad value turns the column into text (and gets reported) rather than failing
        return pl.read_csv(io.BytesIO(data), infer_schema_length=None, null_values=[""])
    except Exception as exc:  # polars and pyarrow raise many kinds; all mean "not readable"
        raise InvalidInput(f"cannot read the body as {fmt}: {str(exc).splitlines()[0]}") from None


def _check_feature(frame: pl.DataFrame, feature: FeatureSpec, out: _Columns) -> pl.Series:
    """Check one feature column; returns the column as it should be stored."""
    column = frame.get_column(feature.name)
    dtype = column.dtype
    numeric = feature.type in (FeatureType.NUMERIC, FeatureType.INTEGER)
    if numeric and dtype.is_numeric():
        if dtype.is_float():
            column = column.fill_nan(None)
            infinite = column.is_infinite().fill_null(False)
            if infinite.any():
                idx = infinite.arg_true().to_list()
                out.add(
                    idx,
                    feature.name,
                    "a finite number (not NaN or infinity)",
                    [repr(v) for v in column.gather(idx).to_list()],
                    f"feature {feature.name!r} must be a finite number",
                )
            if feature.type is FeatureType.INTEGER:
                fractional = ((column.round(0) != column) & ~infinite).fill_null(False)
                if fractional.any():
                    idx = fractional.arg_true().to_list()
                    out.add(
                        idx,
                        feature.name,
                        "an integer",
                        column.gather(idx).to_list(),
                        f"feature {feature.name!r} must be an integer",
                    )
        _check_nulls(column, feature, out)
        return column
    if feature.type is FeatureType.TEXT and dtype == pl.String:
        # a column of strings: only the length is left to check, at once for the column
        limit = feature.max_length or DEFAULT_TEXT_MAX_LENGTH
        too_long = (column.str.len_chars() > limit).fill_null(False)
        if too_long.any():
            idx = too_long.arg_true().to_list()
            out.add(
                idx,
                feature.name,
                f"text of at most {limit:,} characters",
                column.gather(idx).to_list(),
                f"feature {feature.name!r} is longer than {limit:,} characters",
            )
        _check_nulls(column, feature, out)
        return column
    if (feature.type is FeatureType.CATEGORICAL and dtype in (pl.String, pl.Categorical)) or (
        feature.type is FeatureType.BOOLEAN and dtype == pl.Boolean
    ):
        _check_nulls(column, feature, out)
        return column.cast(pl.String) if dtype == pl.Categorical else column
    # the column's type does not settle it: the gateway's per-value rules decide, and
    # numeric text is stored as numbers
    validator = SchemaValidator(ModelSpec(name="column", task=Task.REGRESSION, features=[feature]))
    values = column.to_list()
    for row, value in enumerate(values):
        problems = validator.errors({feature.name: value}, row)
        for problem in problems:
            out.bad.add(row)
            out.errors.append(problem)
    if numeric and dtype == pl.String:
        return column.str.strip_chars().cast(pl.Float64, strict=False)
    return column


def _check_nulls(column: pl.Series, feature: FeatureSpec, out: _Columns) -> None:
    if feature.nullable or not column.null_count():
        return
    idx = column.is_null().arg_true().to_list()
    out.add(
        idx,
        feature.name,
        "a value (not null)",
        [None] * len(idx),
        f"feature {feature.name!r} may not be null",
    )


def _timestamps(frame: pl.DataFrame, now: datetime, out: _Columns) -> pl.Series:
    if "timestamp" not in frame.columns:
        return pl.Series("timestamp", [now] * frame.height, dtype=pl.Datetime("us", "UTC"))
    column = frame.get_column("timestamp")
    dtype = column.dtype
    if isinstance(dtype, pl.Datetime):
        parsed = (
            column.dt.replace_time_zone("UTC")
            if dtype.time_zone is None
            else column.dt.convert_time_zone("UTC")
        )
    elif dtype.is_numeric():
        seconds = column.cast(pl.Float64)
        scale = pl.when(seconds.abs() > _EPOCH_MS_ABOVE).then(1_000).otherwise(1_000_000)
        micros = pl.select((seconds * scale).cast(pl.Int64, strict=False)).to_series()
        parsed = micros.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    else:
        values = column.cast(pl.String).to_list()
        parsed = pl.Series(
            "timestamp",
            [parse_timestamp(v) if v is not None else now for v in values],
            dtype=pl.Datetime("us", "UTC"),
        )
    bad = (parsed.is_null() & column.is_not_null()).fill_null(False)
    if bad.any():
        idx = bad.arg_true().to_list()
        out.add(
            idx,
            "timestamp",
            "an ISO-8601 time or epoch seconds",
            column.gather(idx).to_list(),
            "timestamp is not a time",
        )
    return parsed.fill_null(now)


def _check_finite(
    frame: pl.DataFrame, name: str, out: _Columns, *, minimum: float | None = None
) -> None:
    column = frame.get_column(name)
    if not column.dtype.is_numeric():
        as_float = column.cast(pl.Float64, strict=False)
        idx = (as_float.is_null() & column.is_not_null()).arg_true().to_list()
        out.add(idx, name, "a number", column.gather(idx).to_list(), f"{name} must be a number")
        column = as_float
    column = column.cast(pl.Float64)
    bad = ~column.is_finite()
    if minimum is not None:
        bad = bad | (column < minimum)
    bad = bad.fill_null(False)
    if bad.any():
        idx = bad.arg_true().to_list()
        out.add(
            idx,
            name,
            "a finite number" + (f" >= {minimum:g}" if minimum is not None else ""),
            [repr(v) for v in column.gather(idx).to_list()],
            f"{name} must be a finite number",
        )


def _parse_columnar(
    spec: ModelSpec, data: bytes, fmt: Format, now: datetime
) -> tuple[RecordBatch, list[FieldError]]:
    frame = _read_frame(data, fmt)
    if frame.height == 0:
        return RecordBatch(pl.DataFrame(schema={c: pl.String for c in BATCH_COLUMNS})), []
    out = _Columns(frame.height)
    names = spec.feature_names
    features = set(names)
    probas = [c for c in frame.columns if c.startswith(PROBA_PREFIX) and c not in features]
    unknown = [
        c for c in frame.columns if c not in features and c not in RESERVED and c not in probas
    ]
    for name in unknown:
        # an unknown column is only a problem on the rows that fill it
        column = frame.get_column(name)
        filled = column.is_not_null()
        if column.dtype.is_float():
            filled = filled & ~column.is_nan()
        idx = filled.arg_true().to_list()
        out.add(
            idx,
            name,
            "no such feature",
            column.gather(idx).to_list(),
            f"unknown feature {name!r}; the model's features are {names}",
        )
    columns: dict[str, pl.Series] = {}
    for feature in spec.features:
        if feature.name not in frame.columns:
            out.add(
                list(range(frame.height)),
                feature.name,
                "present",
                [None] * frame.height,
                f"feature {feature.name!r} is missing",
            )
            continue
        columns[feature.name] = _check_feature(frame, feature, out)
    for name in ("latency_ms", "score", *probas):
        if name in frame.columns and name not in features:
            _check_finite(frame, name, out, minimum=0 if name == "latency_ms" else None)
    timestamps = _timestamps(frame, now, out)
    if "version" in frame.columns and not frame.get_column("version").dtype.is_integer():
        column = frame.get_column("version")
        idx = column.is_not_null().arg_true().to_list()
        out.add(
            idx, "version", "an integer", column.gather(idx).to_list(), "version must be an integer"
        )

    n = frame.height
    if "id" in frame.columns:
        ids = frame.get_column("id").cast(pl.String)
        ids = pl.select(pl.when(ids != "").then(ids)).to_series().alias("id")
        too_long = (ids.str.len_chars() > 64).fill_null(False).arg_true().to_list()
        out.add(
            too_long,
            "id",
            "a string of at most 64 characters",
            ids.gather(too_long).to_list(),
            "id is longer than 64 characters",
        )
    else:
        ids = pl.Series("id", [None] * n, dtype=pl.String)
    # JSON and time text are made here, a column at a time in Rust, not row by row at insert
    if len(features) == len(columns):
        features_json = pl.DataFrame(columns).select(pl.struct(names).struct.json_encode())
        features_col = features_json.to_series()
    else:
        features_col = pl.Series(["{}"] * n)
    if probas:
        renamed = [pl.col(p).cast(pl.Float64).alias(p[len(PROBA_PREFIX) :]) for p in probas]
        scores = frame.select(pl.struct(renamed).struct.json_encode()).to_series()
    elif "score" in frame.columns:
        score = pl.col("score").cast(pl.Float64, strict=False)
        scores = frame.select(json_column(score)).to_series()
    else:
        scores = pl.Series([None] * n, dtype=pl.String)

    def optional(name: str, dtype: Any) -> pl.Series:
        if name in frame.columns and name not in features:
            return frame.get_column(name).cast(dtype, strict=False)
        return pl.Series([None] * n, dtype=dtype)

    prediction = (
        frame.select(json_column(pl.col("prediction"))).to_series()
        if "prediction" in frame.columns and "prediction" not in features
        else pl.Series([None] * n, dtype=pl.String)
    )
    batch = pl.DataFrame(
        {
            "id": ids,
            "model": pl.Series([spec.name] * n, dtype=pl.String),
            "ts_utc": timestamps.dt.strftime("%Y-%m-%d %H:%M:%S%.6f"),
            "version": optional("version", pl.Int64),
            "features_json": features_col,
            "prediction_json": prediction,
            "scores_json": scores,
            "latency_ms": optional("latency_ms", pl.Float64),
            "error": optional("error", pl.String),
            "served_by": pl.Series(["external"] * n, dtype=pl.String),
            **({"label": frame.get_column("label")} if "label" in frame.columns else {}),
        }
    )
    if ids.null_count():
        untimed = (
            frame.get_column("timestamp").is_null()
            if "timestamp" in frame.columns
            else pl.Series([True] * n)
        )
        batch = _name_unnamed(batch, untimed, spec.name, _UploadDigest(data))
    if out.bad:
        keep = pl.Series([True] * n)
        keep = keep.scatter(sorted(out.bad), False)
        batch = batch.filter(keep)
    out.errors.sort(key=lambda e: (e.row, e.field))
    return RecordBatch(batch), out.errors


def _name_unnamed(
    batch: pl.DataFrame, untimed: pl.Series, model: str, digest: _UploadDigest
) -> pl.DataFrame:
    """Fill the null ids of a columnar batch with ids derived from each row's content."""
    values = ["features_json", "prediction_json", "scores_json", "latency_ms", "error", "version"]
    time_key = pl.col("ts_utc")
    if untimed.any():
        time_key = pl.when(untimed).then(pl.lit(f"@{digest}")).otherwise(time_key)
    key = pl.concat_str(
        [time_key, *(pl.col(c).cast(pl.String).fill_null("\x00") for c in values)],
        separator="\x1f",
    )
    unnamed = (
        batch.with_row_index("_row")
        .filter(pl.col("id").is_null())
        .select("_row", key.alias("_key"))
        .with_columns(pl.int_range(pl.len()).over("_key").alias("_n"))
    )
    named: list[str] = []
    for part in unnamed.iter_slices(100_000):  # bounded memory for a million-row upload
        named.extend(
            _content_ids(model, part.get_column("_key").to_list(), part.get_column("_n").to_list())
        )
    derived = pl.Series("id", [None] * batch.height, dtype=pl.String).scatter(
        unnamed.get_column("_row"), pl.Series(named, dtype=pl.String)
    )
    return batch.with_columns(pl.coalesce(pl.col("id"), derived).alias("id"))


# ----------------------------------------------------------------------------- entry points


def parse_records(
    spec: ModelSpec, data: bytes, fmt: Format | str, *, now: datetime | None = None
) -> tuple[Sequence[dict[str, Any]], list[FieldError]]:
    """Parse and check bulk records for ``spec``: (good rows, errors of the bad rows).

    Good rows are ready for ``Store.insert_records`` (a ``label`` key, when present, is for
    ``Store.add_feedback``: see :func:`labels_of`). Rows read from CSV or Parquet come as a
    :class:`~mlwarden.store.batch.RecordBatch` (a sequence of dicts backed by a Polars frame,
    features and scores already JSON text): converting a column at a time is what makes bulk
    capture fast. Each error names its row index (0-based,
    counting data rows only), field, what was expected and what was received. Raises
    ``InvalidInput`` when the body cannot be read at all.
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown record format {fmt!r}; use one of {', '.join(FORMATS)}")
    now = datetime.now(UTC) if now is None else now
    if fmt == "jsonl":
        return _parse_jsonl(spec, data, now)
    return _parse_columnar(spec, data, fmt, now)  # type: ignore[arg-type]


@dataclass
class IngestReport:
    """What one bulk upload did."""

    received: int
    stored: int
    duplicates: int
    rejected_rows: list[int]
    errors: list[FieldError]
    labels_accepted: int = 0

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": len(self.rejected_rows),
            "labels": self.labels_accepted,
        }
        if self.errors:
            result["errors"] = errors_detail(self.errors)
        return result


def ingest_records(
    store: Store,
    model: str,
    data: bytes,
    fmt: Format | str,
    *,
    partial: bool = False,
    batch_size: int = 50_000,
    writer: RecordWriter | None = None,
) -> IngestReport:
    """Parse, check and store a bulk upload; labels in it become feedback.

    Any bad row rejects the whole upload (``InvalidInput`` listing the bad rows, nothing
    stored) unless ``partial`` is set: then the good rows are stored and the bad ones reported.
    With a ``writer`` the rows are queued (``stored`` then counts queued rows, ``duplicates`` 0).
    """
    spec = store.get_model(model)
    rows, errors = parse_records(spec, data, fmt)
    rejected = sorted({e.row for e in errors})
    if errors and not partial:
        first = errors[0]
        raise InvalidInput(
            f"{len(rejected)} bad rows of {len(rows) + len(rejected)}; nothing stored (ask for "
            f"partial acceptance to store the good rows). First: row {first.row}: {first.message}",
            **errors_detail(errors),
        )
    if writer is not None:
        writer.submit(rows)
        stored = len(rows)
    else:
        stored = store.insert_records(rows, chunk_size=batch_size)
    labels = labels_of(rows)
    accepted = 0
    if labels:
        if writer is not None:
            writer.flush()
        accepted, _unknown = store.add_feedback(model, labels)
    return IngestReport(
        received=len(rows) + len(rejected),
        stored=stored,
        duplicates=0 if writer is not None else len(rows) - stored,
        rejected_rows=rejected,
        errors=errors,
        labels_accepted=accepted,
    )
