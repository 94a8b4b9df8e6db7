"""How long the agent takes to read its next window: by key (now) against by offset (before).

Stores N records of one model (10 numeric features, one every 10 ms of arrival time) in a fresh
SQLite file and a fresh PostgreSQL database, then reads the window of 1,000 records that starts
at several depths into the stream, the way ``MonitorSource`` reads it: after the stored
(received_at, id) key of the window before, and, for comparison, with OFFSET as it did before.
Each read is repeated and the median is reported; both ways return the same records.
PostgreSQL's table is ANALYZEd after loading, as autovacuum would do in a running server.

    .venv/bin/python bench/bench_windows.py --records 500000
    .venv/bin/python bench/bench_windows.py --records 200000 --no-postgres
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from mlwarden.agent.monitor_source import MonitorSource
from mlwarden.domain import FeatureSpec, ModelSpec, Task
from mlwarden.settings import Settings
from mlwarden.store import Store

WINDOW = 1_000
FEATURES = [f"f{i}" for i in range(10)]
SPEC = ModelSpec(
    name="bench", task=Task.CLASSIFICATION, features=[FeatureSpec(name=f) for f in FEATURES]
)
START = datetime(2026, 1, 1, tzinfo=UTC)


def fill(store: Store, records: int) -> None:
    store.create_model(SPEC)
    batch = 50_000
    for first in range(0, records, batch):
        rows = []
        for n in range(first, min(records, first + batch)):
            when = START + timedelta(milliseconds=10 * n)
            rows.append(
                {
                    "id": f"r{n:09d}",
                    "model": "bench",
                    "timestamp": when,
                    "received_at": when,
                    "features": {f: float(n % 97) for f in FEATURES},
                    "prediction": n % 2,
                }
            )
        store.insert_records(rows)


def timed(read: object, repeats: int) -> tuple[float, list[str]]:
    times, ids = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        rows = read()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
        ids = list(rows["id"])
    return statistics.median(times), ids


def run(label: str, url: str, records: int, repeats: int) -> None:
    store = Store(url)
    fill(store, records)
    if store.dialect == "postgresql":
        # what autovacuum does to a table that grew: without statistics the planner guesses a
        # few dozen rows and sorts instead of reading the index in order
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE records")
    source = MonitorSource(store, Settings(window_size=WINDOW, window_settle_s=0.0))
    print(f"{label}: {records:,} records stored")
    print(f"{'window':>8} {'by key (ms)':>12} {'by offset (ms)':>15} {'offset / key':>13}")
    for depth in (0.01, 0.25, 0.5, 0.99):
        index = int(records * depth) // WINDOW
        if index == 0:
            continue
        last = index * WINDOW - 1  # the last record of the window before
        key = (START + timedelta(milliseconds=10 * last), f"r{last:09d}")
        by_key, key_ids = timed(lambda k=key: source._window_rows("bench", k), repeats)
        by_offset, offset_ids = timed(
            lambda i=index: source._window_rows("bench", None, i * WINDOW), repeats
        )
        assert key_ids == offset_ids and len(key_ids) == WINDOW
        print(
            f"{index:>8} {by_key * 1000:>12.1f} {by_offset * 1000:>15.1f} "
            f"{by_offset / by_key:>12.1f}x"
        )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="server URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.records, args.repeats)
    if args.no_postgres:
        return
    name = f"mlw_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{args.pg}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        run("PostgreSQL", f"{args.pg}/{name}", args.records, args.repeats)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
