"""Bulk capture benchmark: records/s from a Parquet file into SQLite and PostgreSQL.

Generates an N-row Parquet file of prediction records (10 numeric features, a prediction, two
class probabilities, a latency, a timestamp, an id) in a temporary folder, then times the path
of ``POST /v1/models/{name}/records`` without HTTP: ``capture.ingest.parse_records`` (read +
schema checks) and ``Store.insert_records`` in one transaction sent in batches, into a fresh
SQLite file and a fresh PostgreSQL database. ``--without-ids`` leaves the id column out, so the
server derives each id from the row's content (what a retried upload relies on).

    .venv/bin/python bench/bench_capture.py --rows 1000000
    .venv/bin/python bench/bench_capture.py --rows 200000 --no-postgres
    .venv/bin/python bench/bench_capture.py --no-postgres --sqlite-page-sizes 4096,16384
    .venv/bin/python bench/bench_capture.py --rows 1000000 --no-postgres --without-ids

``--sqlite-page-sizes`` runs SQLite once per page size, side by side (mlwarden creates new files
with 16 KiB pages; 4096 is SQLite's default and what files made before that change use).

``--floor`` adds, after each mlwarden run, the floor on the same store: the same Parquet file
read by Polars, its columns made into the table's (JSON text, UTC times) and sent without any
check or duplicate handling, by a bare COPY (CSV written by Polars) into a fresh PostgreSQL
database's ``records``, and by a bare ``executemany`` of plain INSERTs into a fresh SQLite
file with mlwarden's schema, in one transaction each. ``--rounds`` repeats the whole
sequence, so mlwarden and its floor alternate:

    .venv/bin/python bench/bench_capture.py --rows 1000000 --floor --rounds 3
"""

from __future__ import annotations

import argparse
import io
import os
import sqlite3
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
from sqlalchemy import create_engine, text

from mlwarden.capture.ingest import parse_records
from mlwarden.domain import FeatureSpec, ModelSpec, Task
from mlwarden.store import Store
from mlwarden.store.database import SQLITE_PAGE_SIZE

FEATURES = [f"f{i}" for i in range(10)]
SPEC = ModelSpec(
    name="bench", task=Task.CLASSIFICATION, features=[FeatureSpec(name=f) for f in FEATURES]
)


def make_parquet(path: Path, rows: int, seed: int = 0, *, ids: bool = True) -> None:
    rng = np.random.default_rng(seed)
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    proba = rng.random(rows)
    frame = pl.DataFrame(
        {
            "id": [uuid.UUID(int=int(i), version=4).hex for i in rng.integers(0, 2**62, rows)],
            "timestamp": pl.Series(start + np.arange(rows) * 10).cast(pl.Datetime("ms", "UTC")),
            **{name: rng.normal(size=rows) for name in FEATURES},
            "prediction": (proba > 0.5).astype(np.int64),
            "proba_0": 1 - proba,
            "proba_1": proba,
            "latency_ms": rng.gamma(2.0, 2.0, rows),
        }
    )
    (frame if ids else frame.drop("id")).write_parquet(path)


def run(url: str, data: bytes, batch: int) -> tuple[int, float, float, float]:
    store = Store(url)
    store.create_model(SPEC)
    cpu = time.process_time()
    started = time.perf_counter()
    rows, errors = parse_records(SPEC, data, "parquet")
    parsed = time.perf_counter()
    assert not errors, errors[:3]
    stored = store.insert_records(rows, chunk_size=batch)
    done = time.perf_counter()
    cpu = time.process_time() - cpu
    assert stored == len(rows) == store.count_records("bench")
    store.close()
    return stored, parsed - started, done - started, cpu


def _table_frame(frame: pl.DataFrame, model_id: int, *, sqlite: bool) -> pl.DataFrame:
    """The Parquet file's columns as ``records``' columns, the way a hand-written loader would."""
    stamp = "%Y-%m-%d %H:%M:%S%.6f" + ("" if sqlite else "+00:00")
    received = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + ("" if sqlite else "+00:00")
    return frame.select(
        pl.col("id"),
        pl.lit(model_id, pl.Int64).alias("model_id"),
        pl.lit(None, pl.Int64).alias("version"),
        pl.col("timestamp").dt.strftime(stamp).alias("ts"),
        pl.lit(received).alias("received_at"),
        pl.struct(FEATURES).struct.json_encode().alias("features"),
        pl.col("prediction").cast(pl.String).alias("prediction"),
        pl.struct(pl.col("proba_0").alias("0"), pl.col("proba_1").alias("1"))
        .struct.json_encode()
        .alias("scores"),
        pl.col("latency_ms"),
        pl.lit(None, pl.String).alias("error"),
        pl.lit("external").alias("served_by"),
    )


def run_floor(url: str, data: bytes, batch: int) -> tuple[int, float, float, float]:
    """A bare load of the same file into the same table: no checks, no duplicate handling."""
    store = Store(url)
    store.create_model(SPEC)
    model_id = store.model_id("bench")
    store.close()
    sqlite = url.startswith("sqlite")
    cpu = time.process_time()
    started = time.perf_counter()
    frame = _table_frame(pl.read_parquet(io.BytesIO(data)), model_id, sqlite=sqlite)
    parsed = time.perf_counter()
    names = ", ".join(frame.columns)
    if sqlite:
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-65536")
        marks = ", ".join("?" for _ in frame.columns)
        with conn:
            for start in range(0, frame.height, batch):
                rows = frame.slice(start, batch).rows()
                conn.executemany(f"INSERT INTO records ({names}) VALUES ({marks})", rows)
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url) as conn, conn.cursor() as cur:
            for start in range(0, frame.height, batch):
                text = io.BytesIO()
                frame.slice(start, batch).write_csv(text, include_header=False)
                with cur.copy(f"COPY records ({names}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(text.getvalue())
    done = time.perf_counter()
    cpu = time.process_time() - cpu
    check = Store(url)
    assert check.count_records("bench") == frame.height
    check.close()
    return frame.height, parsed - started, done - started, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000, help="rows per insert_records call")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--without-ids", action="store_true", help="no id column: ids derived from content"
    )
    parser.add_argument(
        "--sqlite-page-sizes",
        default=str(SQLITE_PAGE_SIZE),
        help="comma-separated page sizes of the SQLite files to compare",
    )
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="server URL")
    parser.add_argument("--floor", action="store_true", help="a bare load after each run")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.parquet"
        make_parquet(path, args.rows, ids=not args.without_ids)
        data = path.read_bytes()
        print(
            f"{args.rows:,} records{' without ids' if args.without_ids else ''}, "
            f"Parquet {len(data) / 1e6:.1f} MB, batch {args.batch:,}"
        )
        targets: list[tuple[str, str, bool]] = []  # label, kind, floor
        sizes = [] if args.no_sqlite else [int(v) for v in args.sqlite_page_sizes.split(",")]
        for size in sizes:
            label = "SQLite" if size == SQLITE_PAGE_SIZE else f"SQLite {size // 1024} KiB pages"
            targets.append((label, f"sqlite:{size}", False))
            if args.floor:
                targets.append(("SQLite bare executemany", f"sqlite:{size}", True))
        if not args.no_postgres:
            targets.append(("PostgreSQL", "postgresql", False))
            if args.floor:
                targets.append(("PostgreSQL bare COPY", "postgresql", True))
        admin = create_engine(f"{args.pg}/test", isolation_level="AUTOCOMMIT")
        rates: dict[str, list[float]] = {}
        for number in range(args.rounds * len(targets)):
            label, kind, floor = targets[number % len(targets)]
            if kind.startswith("sqlite:"):
                size = int(kind.split(":")[1])
                path = Path(tmp) / f"bench-{number}-{size}.db"
                # the page size sticks only to a new file, before WAL mode: create it here
                with sqlite3.connect(path) as conn:
                    conn.execute(f"PRAGMA page_size={size}")
                    conn.execute("PRAGMA journal_mode=WAL")
                url, pg_name = f"sqlite:///{path}", None
            else:
                pg_name = f"mlw_bench_{uuid.uuid4().hex[:8]}"
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
                url = f"{args.pg}/{pg_name}"
            try:
                load = os.getloadavg()[0]
                stored, parse_s, total_s, cpu_s = (run_floor if floor else run)(
                    url, data, args.batch
                )
            finally:
                if pg_name is not None:
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
                if url.startswith("sqlite"):
                    Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
            rates.setdefault(label, []).append(stored / total_s)
            # CPU time of this process too: on a shared machine wall time mostly measures
            # the neighbours (PostgreSQL's own CPU is not in it)
            print(
                f"{label:<24} {stored / total_s:>10,.0f} records/s wall, "
                f"{stored / cpu_s:>10,.0f} records/s per CPU-second of this process  "
                f"(parse+check {parse_s:.2f} s, total {total_s:.2f} s, load {load:.1f})",
                flush=True,
            )
        admin.dispose()
    for label, floor_label in (
        ("PostgreSQL", "PostgreSQL bare COPY"),
        ("SQLite", "SQLite bare executemany"),
    ):
        if label in rates and floor_label in rates:
            ratios = [a / b for a, b in zip(rates[label], rates[floor_label], strict=True)]
            print(
                f"{label} / its floor, per round: "
                + ", ".join(f"{r:.2f}" for r in ratios)
                + f" (median {sorted(ratios)[len(ratios) // 2]:.2f})"
            )


if __name__ == "__main__":
    main()
