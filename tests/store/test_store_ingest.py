"""Bulk capture parsing (JSON lines, CSV, Parquet) and storing, with per-row errors."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import polars as pl
import pytest

from mlwarden.capture.ingest import detect_format, ingest_records, labels_of, parse_records
from mlwarden.domain import FeatureSpec, FeatureType, ModelSpec, Task
from mlwarden.errors import InvalidInput
from mlwarden.store import Store

SPEC = ModelSpec(
    name="churn",
    task=Task.CLASSIFICATION,
    features=[
        FeatureSpec(name="age", type=FeatureType.NUMERIC),
        FeatureSpec(name="plan", type=FeatureType.CATEGORICAL),
        FeatureSpec(name="seats", type=FeatureType.INTEGER, nullable=False),
    ],
)
GOOD = pl.DataFrame(
    {
        "id": ["a", "b", "c"],
        "timestamp": ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", "1767225600"],
        "age": [30.5, 41.0, 22.0],
        "plan": ["pro", "free", "pro"],
        "seats": [1, 2, 3],
        "prediction": [1, 0, 1],
        "proba_0": [0.2, 0.9, 0.4],
        "proba_1": [0.8, 0.1, 0.6],
        "latency_ms": [3.0, 4.5, 2.0],
        "label": [1, None, 0],
    }
)


def body(frame: pl.DataFrame, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "csv":
        frame.write_csv(out)
    elif fmt == "parquet":
        frame.write_parquet(out)
    else:
        return "\n".join(json.dumps(r) for r in frame.to_dicts()).encode()
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_each_format_is_stored_with_scores_times_and_labels(fmt: str, sqlite_store: Store) -> None:
    sqlite_store.create_model(SPEC)
    report = ingest_records(sqlite_store, "churn", body(GOOD, fmt), fmt)
    assert (report.received, report.stored, report.labels_accepted) == (3, 3, 2)
    rows = {r["id"]: r for r in sqlite_store.fetch_records("churn")}
    assert rows["a"]["features"] == {"age": 30.5, "plan": "pro", "seats": 1}
    assert rows["a"]["scores"] == {"0": 0.2, "1": 0.8}
    assert rows["a"]["prediction"] == 1 and rows["a"]["latency_ms"] == 3.0
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    assert rows["a"]["timestamp"] == moment and rows["b"]["timestamp"] == moment
    assert rows["c"]["timestamp"] == moment  # epoch seconds
    assert (rows["a"]["label"], rows["b"]["label"], rows["c"]["label"]) == (1, None, 0)
    # the same upload again stores nothing twice
    again = ingest_records(sqlite_store, "churn", body(GOOD, fmt), fmt)
    assert (again.stored, again.duplicates) == (0, 3)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_bad_rows_are_named_and_nothing_is_stored_without_partial(
    fmt: str, sqlite_store: Store
) -> None:
    sqlite_store.create_model(SPEC)
    bad = GOOD.drop("label").with_columns(
        pl.Series("age", ["30", "old", "22"])
        if fmt == "csv"
        else pl.Series("age", [30.0, 1.0, 2.0]),
        pl.Series("seats", [1, None, 3]),
    )
    rows, errors = parse_records(SPEC, body(bad, fmt), fmt)
    found = {(e.row, e.field, e.expected) for e in errors}
    assert (1, "seats", "a value (not null)") in found
    if fmt == "csv":
        assert (1, "age", "a number") in found
        assert next(e for e in errors if e.field == "age").received == "old"
    assert [r["id"] for r in rows] == ["a", "c"]
    with pytest.raises(InvalidInput, match="1 bad rows of 3; nothing stored") as caught:
        ingest_records(sqlite_store, "churn", body(bad, fmt), fmt)
    assert caught.value.detail["bad_rows"] == [1]
    assert sqlite_store.count_records("churn") == 0
    report = ingest_records(sqlite_store, "churn", body(bad, fmt), fmt, partial=True)
    assert (report.stored, report.rejected_rows) == (2, [1])
    assert sqlite_store.count_records("churn") == 2


def test_missing_unknown_and_non_finite_values() -> None:
    frame = (
        GOOD.drop("label")
        .with_columns(
            pl.Series("age", [1.0, float("inf"), float("nan")]),
            pl.Series("colour", [None, "red", None]),
        )
        .drop("plan")
    )
    _rows, errors = parse_records(SPEC, body(frame, "parquet"), "parquet")
    found = {(e.row, e.field, e.expected) for e in errors}
    assert {(r, "plan", "present") for r in range(3)} <= found
    assert (1, "colour", "no such feature") in found
    assert (1, "age", "a finite number (not NaN or infinity)") in found
    assert not any(e.row == 2 and e.field == "age" for e in errors)  # NaN is a null: allowed


def test_jsonl_tells_missing_from_null_and_reports_malformed_lines() -> None:
    lines = [
        {"id": "1", "age": 3, "plan": "x", "seats": 1},
        {"id": "2", "age": None, "plan": "x", "seats": 1},
        {"id": "3", "plan": "x", "seats": 1},
    ]
    data = "\n".join(json.dumps(r) for r in lines).encode() + b'\n{"id": "4", "age": NaN}\n{oops'
    rows, errors = parse_records(SPEC, data, "jsonl")
    assert [r["id"] for r in rows] == ["1", "2"]
    assert {(e.row, e.field) for e in errors} >= {(2, "age"), (3, ""), (4, "")}


def test_ids_are_generated_and_formats_detected() -> None:
    rows, errors = parse_records(SPEC, body(GOOD.drop("id"), "parquet"), "parquet")
    assert not errors and len({r["id"] for r in rows}) == 3
    assert labels_of(rows) == [(rows[0]["id"], 1), (rows[2]["id"], 0)]
    assert detect_format("text/csv; charset=utf-8") == "csv"
    assert detect_format(filename="x.parquet") == "parquet"
    with pytest.raises(InvalidInput, match="cannot read the body as parquet"):
        parse_records(SPEC, b"not parquet", "parquet")
    with pytest.raises(InvalidInput, match="unknown record format"):
        parse_records(SPEC, b"", "xml")
