"""Lake profiling speed: the Spark engine on local[2] against the Polars engine, one machine.

Generates a lake of prediction logs as Parquet (files of 1,000,000 records: a timestamp, 8
numeric and 2 categorical features, prediction, score, latency) into a folder outside the
repository, then profiles the whole lake into a reference (``monitor.lake.profile_lake``: bins
from the first 200,000 records, every record profiled on them) with each engine, each in its
own process, side by side at each size. Figures per run: rows/s over the profiling itself, the
Spark session's start apart, and peak memory: the resident set of the process and all its
descendants (for Spark the driver, its JVM and the Python workers), sampled every 0.2 s.

    .venv/bin/python bench/bench_spark.py                          # 1M, 10M and 50M rows
    .venv/bin/python bench/bench_spark.py --rows 1000000 --dir /tmp/lake
    .venv/bin/python bench/bench_spark.py --keep                   # keep the generated lake

Needs the ``mlwarden[spark]`` extra and Java 17+.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FILE_ROWS = 1_000_000
SIZES = (1_000_000, 10_000_000, 50_000_000)
LEVELS = [f"level_{i:02d}" for i in range(30)]


# ----------------------------------------------------------------------------- data


def _file(rng: np.random.Generator, index: int, n: int) -> pa.Table:
    start = np.datetime64("2026-01-01T00:00:00", "us") + np.timedelta64(index, "D")
    stamps = start + np.sort(rng.integers(0, 86_400_000_000, n)).astype("timedelta64[us]")
    columns: dict[str, Any] = {"timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC"))}
    families = (
        lambda: rng.normal(50, 10, n),
        lambda: rng.lognormal(3, 0.7, n),
        lambda: rng.uniform(-1, 1, n),
        lambda: rng.exponential(2.0, n),
    )
    for i in range(8):
        columns[f"num_{i}"] = families[i % 4]()
    for i, size in enumerate((10, 30)):
        weights = 1 / np.arange(1, size + 1)
        codes = rng.choice(size, n, p=weights / weights.sum()).astype(np.int32)
        columns[f"cat_{i}"] = pa.DictionaryArray.from_arrays(codes, LEVELS[:size]).cast(pa.string())
    score = rng.uniform(size=n)
    columns["score"] = score
    columns["prediction"] = (score > 0.5).astype(np.int64)
    columns["latency_ms"] = rng.lognormal(3, 0.4, n)
    return pa.table(columns)


def generate(folder: Path, rows: int) -> float:
    """Write ``rows`` records in files of ``FILE_ROWS``; returns the seconds it took."""
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index, first in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - first)
        pq.write_table(_file(rng, index, n), folder / f"part-{index:05d}.parquet")
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- measurement


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every process below it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            statm = Path(f"/proc/{entry}/statm").read_text().split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(stat[1]), []).append(pid)
        rss[pid] = int(statm[1]) * page
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def run(engine: str, folder: Path) -> dict[str, Any]:
    """Profile the lake with ``engine`` in a fresh process; its figures and peak tree RSS."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", engine, "--dir", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.2):
            peak = max(peak, _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} worker failed ({proc.returncode})")
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    figures["peak_rss_mb"] = round(peak / 2**20)
    return figures


def worker(engine: str, folder: Path) -> None:
    """In a fresh process: start the engine, profile the lake, print one JSON line."""
    from mlwarden.monitor.lake import get_engine, profile_lake

    started = time.perf_counter()
    eng = get_engine(engine, master="local[2]" if engine == "spark" else None)
    start_s = time.perf_counter() - started
    began = time.perf_counter()
    profile = profile_lake(str(folder / "*.parquet"), engine=eng)
    seconds = time.perf_counter() - began
    print(
        json.dumps(
            {
                "engine": engine,
                "rows": profile.rows,
                "start_s": round(start_s, 1),
                "seconds": round(seconds, 1),
                "rows_per_s": round(profile.rows / seconds),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="*", default=list(SIZES))
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to generate the lakes (default: a temporary folder)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated lakes")
    parser.add_argument("--worker", choices=("polars", "spark"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.dir)
        return
    root = args.dir or Path(tempfile.mkdtemp(prefix="mlwarden-lake-"))
    print(f"load average at start: {os.getloadavg()}", flush=True)
    for rows in args.rows:
        folder = root / f"rows-{rows}"
        if not folder.exists():
            print(f"generating {rows:,} rows: {generate(folder, rows):.1f} s", flush=True)
        for engine in ("polars", "spark"):
            figures = run(engine, folder)
            figures["load"] = round(os.getloadavg()[0], 1)
            print(json.dumps(figures), flush=True)
        if not args.keep:
            shutil.rmtree(folder)
    if not args.keep and args.dir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
