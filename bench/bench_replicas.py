"""Scaling out on one PostgreSQL: predictions/s with 1, 2 and 4 server processes, and how many
records/s one PostgreSQL stores (the COPY rate), to size a fleet.

1. ``mlwarden serve --workers N --no-agent`` on a fresh PostgreSQL database, for N in
   ``--workers`` (1, 2, 4), each in turn and then again in the reverse order (``--rounds``), so
   the neighbours' load on this shared machine falls on every N alike: single-instance
   predictions of a scikit-learn model (bench_gateway's logistic regression on the bundled
   electricity data) at concurrency 64 (64 keep-alive connections from one asyncio load
   generator in this process, which shares the cores). Every answered prediction is stored
   (checked: the database holds as many records as were answered).
   The server's CPU time per prediction (all its processes) is measured too: on a machine
   shared with other work the wall-clock rate follows the neighbours, the CPU cost does not.
2. The COPY rate: ``Store.insert_records`` (COPY into a staging table, then INSERT … ON
   CONFLICT) of records shaped like the gateway's, in batches of the record writer's
   ``write_batch_size``, from 1 and from ``--copy-writers`` concurrent writer processes (each
   replica has one writer), on one new database.

Sizing (printed at the end): a fleet answering P predictions/s writes P records/s (plus one per
shadow copy); one PostgreSQL like this one takes C records/s (the measured COPY rate), so it
carries P <= C * headroom, and N replicas of T predictions/s each serve N * T.

    .venv/bin/python bench/bench_replicas.py [--requests 6000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text

from bench_gateway import (
    concurrent_latencies,
    cpu_seconds,
    elec_workload,
    percentile,
    set_up_model,
)
from mlwarden.domain import FeatureSpec, ModelSpec, Task
from mlwarden.server.background import ServerProcess
from mlwarden.settings import Settings
from mlwarden.store import Store

FEATURES = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]


class Databases:
    """Fresh PostgreSQL databases on the server ``admin_url`` names, dropped at the end."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.admin = create_engine(f"{server}/test", isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def new(self) -> str:
        name = f"mlw_bench_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return f"{self.server}/{name}"

    def drop(self) -> None:
        with self.admin.connect() as conn:
            for name in self.names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children alive now (Uvicorn's supervisor and workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return cpu_seconds(pid) + sum(tree_cpu_seconds(int(child)) for child in children)


def throughput(
    url: str,
    workers: int,
    artifact: bytes,
    bodies: list[bytes],
    requests: int,
    concurrency: int,
    data_dir: Path,
) -> dict[str, Any]:
    server = ServerProcess(data_dir, database_url=url, workers=workers).start()
    try:
        set_up_model(server.url, artifact)
        # every worker loads the model on its first requests: warm all of them up
        asyncio.run(concurrent_latencies(server.port, bodies, concurrency * 20, concurrency))
        pid = server.process.pid  # type: ignore[union-attr]
        cpu = tree_cpu_seconds(pid)
        latencies, per_s = asyncio.run(
            concurrent_latencies(server.port, bodies, requests, concurrency)
        )
        cpu = tree_cpu_seconds(pid) - cpu
    finally:
        server.stop()
    with Store(url, migrate=False) as store:
        stored = store.count_records("elec")
    answered = concurrency * 20 + len(latencies)
    if stored != answered:
        raise RuntimeError(f"{answered} predictions answered, {stored} records stored")
    return {
        "workers": workers,
        "predictions_per_s": per_s,
        "cpu_ms_per_prediction": cpu * 1000 / len(latencies),
        "median_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 99),
    }


def gateway_records(count: int, seed: int) -> list[dict[str, Any]]:
    """Records as the gateway writes them: 6 numeric features, a class, two scores."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    values = rng.random((count, len(FEATURES)))
    proba = rng.random(count)
    return [
        {
            "id": uuid.uuid4().hex,
            "model": "bench",
            "version": 1,
            "timestamp": now,
            "features": dict(zip(FEATURES, map(float, values[i]), strict=True)),
            "prediction": int(proba[i] > 0.5),
            "scores": {"0": float(1 - proba[i]), "1": float(proba[i])},
            "latency_ms": 1.5,
            "error": None,
            "served_by": "live",
        }
        for i in range(count)
    ]


def _copy_writer(url: str, seed: int, count: int, batch: int, ready: Any, results: Any) -> None:
    """One writer process: its own connection and Python interpreter, as a replica's writer."""
    rows = gateway_records(count, seed)
    store = Store(url, migrate=False)
    ready.wait()
    started = time.time()
    for start in range(0, len(rows), batch):  # one transaction per batch, as the writer
        store.insert_records(rows[start : start + batch])
    results.put((started, time.time()))
    store.close()


def copy_rate(url: str, records: int, writers: int, batch: int) -> float:
    """Records/s stored by ``writers`` concurrent writer processes (from the first one's start
    to the last one's end)."""
    with Store(url) as store:
        store.create_model(
            ModelSpec(
                name="bench",
                task=Task.CLASSIFICATION,
                features=[FeatureSpec(name=f) for f in FEATURES],
            )
        )
    share = records // writers
    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(writers), context.Queue()
    processes = [
        context.Process(target=_copy_writer, args=(url, seed, share, batch, ready, results))
        for seed in range(writers)
    ]
    for process in processes:
        process.start()
    spans = [results.get(timeout=3600) for _ in processes]
    for process in processes:
        process.join()
    with Store(url, migrate=False) as store:
        assert store.count_records("bench") == share * writers
    return share * writers / (max(end for _, end in spans) - min(start for start, _ in spans))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--copy-records", type=int, default=200_000)
    parser.add_argument("--copy-writers", type=int, default=4)
    parser.add_argument("--copy-only", action="store_true", help="only the COPY rate")
    parser.add_argument(
        "--pg",
        default=os.environ.get("MLWARDEN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432"),
        help="server URL",
    )
    args = parser.parse_args()

    _model, artifact, _rows, bodies = elec_workload()
    counts = [int(v) for v in args.workers.split(",")]
    order = [n for r in range(args.rounds) for n in (counts if r % 2 == 0 else counts[::-1])]
    if args.copy_only:
        order = []
    databases = Databases(args.pg)
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    print(f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for index, workers in enumerate(order):
                result = throughput(
                    databases.new(),
                    workers,
                    artifact,
                    bodies,
                    args.requests,
                    args.concurrency,
                    Path(tmp) / f"run{index}",
                )
                runs[workers].append(result)
                print(
                    f"  workers={workers}: {result['predictions_per_s']:,.0f} predictions/s, "
                    f"median {result['median_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                    f"server CPU {result['cpu_ms_per_prediction']:.2f} ms/prediction  "
                    f"(load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
        batch = Settings().write_batch_size
        rates = {
            w: copy_rate(databases.new(), args.copy_records, w, batch)
            for w in (1, args.copy_writers)
        }
    finally:
        databases.drop()

    if order:
        print(f"\npredictions/s at concurrency {args.concurrency} (median of {args.rounds} runs):")
        base = statistics.median(r["predictions_per_s"] for r in runs[counts[0]])
        for workers in counts:
            per_s = statistics.median(r["predictions_per_s"] for r in runs[workers])
            cpu = statistics.median(r["cpu_ms_per_prediction"] for r in runs[workers])
            print(
                f"  {workers} worker(s): {per_s:>8,.0f}/s  ({per_s / base:.2f}x of "
                f"{counts[0]}), server CPU {cpu:.2f} ms/prediction"
            )
    print(f"\nPostgreSQL COPY of gateway records, batches of {batch}:")
    for writers, rate in rates.items():
        print(f"  {writers} writer process(es): {rate:>10,.0f} records/s")
    best = max(rates.values())
    print(
        f"\nsizing: one PostgreSQL takes C = {best:,.0f} records/s; at half of it (headroom "
        f"for queries, the agent, vacuum) it carries {best / 2:,.0f} predictions/s"
    )
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
