"""Bulk capture parsing (JSON lines, CSV, Parquet) and storing, with per-row errors."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import mlwarden
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


AWKWARD_TEXT = [
    'a "quoted", comma',
    "",
    None,
    "line\n\\.\nend",  # COPY's end-of-data marker alone on a line
    "back\\slash \\N \\t",
    "ünïcode ✓\r\n",
    "  spaces  ",
    "NULL",
]


def test_text_that_csv_and_copy_treat_specially_is_stored_as_sent(store: Store) -> None:
    """On PostgreSQL an upload reaches the table as CSV through COPY: quotes, commas, line
    breaks, backslashes, an empty string (not NULL) and the end-of-data marker come back as
    they went in; sent again with one more row, only that row is new (the COPY meets the
    stored ids and the rows go through the staging table)."""
    store.create_model(SPEC)
    frame = pl.DataFrame(
        {
            "id": [f"t{i}" for i in range(len(AWKWARD_TEXT))],
            "age": [float(i) for i in range(len(AWKWARD_TEXT))],
            "plan": [v if v is not None else "none" for v in AWKWARD_TEXT],
            "seats": list(range(len(AWKWARD_TEXT))),
            "prediction": AWKWARD_TEXT,
            "latency_ms": [0.5 * i for i in range(len(AWKWARD_TEXT))],
            "error": AWKWARD_TEXT,
        }
    )
    report = ingest_records(store, "churn", body(frame, "parquet"), "parquet")
    assert (report.stored, report.duplicates) == (len(AWKWARD_TEXT), 0)
    stored = {r["id"]: r for r in store.fetch_records("churn")}
    for i, text in enumerate(AWKWARD_TEXT):
        row = stored[f"t{i}"]
        assert row["error"] == text, i
        assert row["prediction"] == text, i
        assert row["features"]["plan"] == (text if text is not None else "none"), i
        assert row["latency_ms"] == 0.5 * i
    more = pl.concat([frame, frame.head(1).with_columns(pl.lit("t_new").alias("id"))])
    again = ingest_records(store, "churn", body(more, "parquet"), "parquet")
    assert (again.stored, again.duplicates) == (1, len(AWKWARD_TEXT))
    assert store.count_records("churn") == len(AWKWARD_TEXT) + 1


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


def test_jsonl_rows_with_unrepresentable_values_are_refused_by_row() -> None:
    good = b'{"id": "ok", "age": 3, "plan": "x", "seats": 1, "label": 1}'
    bad = [
        b'{"id": "inf", "age": 3, "plan": "x", "seats": 1, "label": 1e999}',
        b'{"id": "big", "age": 3, "plan": "x", "seats": 1, "prediction": 1e999}',
        b'{"id": "long", "age": 3, "plan": "x", "seats": 1, "label": ' + b"9" * 30 + b"}",
        b'{"id": "deep", "age": 3, "plan": "x", "seats": 1, "prediction": '
        + b"[" * 100
        + b"1"
        + b"]" * 100
        + b"}",
    ]
    rows, errors = parse_records(SPEC, b"\n".join([good, *bad]), "jsonl")
    assert [r["id"] for r in rows] == ["ok"]
    assert sorted(e.row for e in errors) == [1, 2, 3, 4]
    assert all(e.message.startswith(f"row {e.row}: ") for e in errors)


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


def _unnamed(n: int, *, timed: bool = True) -> pl.DataFrame:
    """``n`` rows without ids; rows 0 and 1 are identical (two equal predictions happen)."""
    frame = pl.DataFrame(
        {
            "timestamp": ["2026-01-01T00:00:00Z"] * 2
            + [f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z" for i in range(2, n)],
            "age": [30.0, 30.0, *(20.0 + i for i in range(2, n))],
            "plan": ["pro"] * n,
            "seats": [1] * n,
            "prediction": [1] * n,
        }
    )
    return frame if timed else frame.drop("timestamp")


class _FailingChunk:
    """Makes the ``fail_at``-th chunk written by ``Store`` fail, as a lost disk or link would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int) -> None:
        self.calls = 0
        original = Store._insert_chunk

        def insert(store: Store, conn: Any, rows: Any) -> int:
            self.calls += 1
            if self.calls == fail_at:
                raise OSError("the disk went away in the middle of the upload")
            return original(store, conn, rows)

        monkeypatch.setattr(Store, "_insert_chunk", insert)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_an_upload_failing_in_its_middle_chunk_stores_nothing_and_a_retry_stores_once(
    fmt: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13 item 8: chunks before the failure stayed, and a retry without ids doubled them."""
    store.create_model(SPEC)
    data = body(_unnamed(30), fmt)
    failing = _FailingChunk(monkeypatch, fail_at=2)
    with pytest.raises(OSError, match="disk went away"):
        ingest_records(store, "churn", data, fmt, batch_size=10)
    assert failing.calls == 2  # the first chunk had been written in the transaction
    assert store.count_records("churn") == 0
    monkeypatch.undo()
    first = ingest_records(store, "churn", data, fmt, batch_size=10)
    assert (first.stored, first.duplicates) == (30, 0)  # the two identical rows are both kept
    retry = ingest_records(store, "churn", data, fmt, batch_size=10)
    assert (retry.stored, retry.duplicates) == (0, 30)
    assert store.count_records("churn") == 30


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_rows_without_id_or_time_are_one_upload_apart(fmt: str, sqlite_store: Store) -> None:
    """Without a time, identical rows of two different uploads are two records, while the same
    upload sent twice is stored once."""
    sqlite_store.create_model(SPEC)
    data = body(_unnamed(5, timed=False), fmt)
    assert ingest_records(sqlite_store, "churn", data, fmt).stored == 5
    assert ingest_records(sqlite_store, "churn", data, fmt).stored == 0
    other = body(_unnamed(6, timed=False), fmt)  # the same five rows and one more
    assert ingest_records(sqlite_store, "churn", other, fmt).stored == 6
    assert sqlite_store.count_records("churn") == 11
    # with a time, a row is the same record whichever upload carries it
    timed = ingest_records(sqlite_store, "churn", body(_unnamed(5), fmt), fmt)
    again = ingest_records(sqlite_store, "churn", body(_unnamed(6), fmt), fmt)
    assert (timed.stored, again.stored, again.duplicates) == (5, 1, 5)


_KILLED_UPLOAD = """
import pathlib, sys, time
from mlwarden.capture.ingest import ingest_records
from mlwarden.store import Store

url, data, marker = sys.argv[1:4]
original = Store._insert_chunk
written = []

def insert_then_stall(store, conn, rows):
    written.append(original(store, conn, rows))
    if len(written) == 1:  # one chunk is in, two to go: the parent kills us here
        pathlib.Path(marker).write_text("one chunk written")
        time.sleep(120)
    return written[-1]

Store._insert_chunk = insert_then_stall
ingest_records(Store(url), "churn", pathlib.Path(data).read_bytes(), "parquet", batch_size=10)
"""


def test_an_upload_killed_midway_stores_nothing(database_url: str, tmp_path: Path) -> None:
    """SIGKILL of the process storing an upload, after one of its three chunks is written."""
    store = Store(database_url)
    store.create_model(SPEC)
    data = tmp_path / "upload.parquet"
    data.write_bytes(body(_unnamed(30), "parquet"))
    marker = tmp_path / "marker"
    source = Path(mlwarden.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(source)}
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_UPLOAD, database_url, str(data), str(marker)], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the upload never wrote its first chunk"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    try:
        assert store.count_records("churn") == 0
        report = ingest_records(store, "churn", data.read_bytes(), "parquet", batch_size=10)
        assert report.stored == 30 and store.count_records("churn") == 30
    finally:
        store.close()
