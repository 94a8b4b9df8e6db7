"""Does the gateway's memory stay bounded under load? And why it did not.

Two measures behind docs/benchmarks.md, "Gateway overhead" / "the record writer beside a busy
event loop":

* ``timeline``: ``mlwarden serve --no-agent`` (SQLite in a temporary folder, the bench's
  logistic regression on the bundled electricity data) and its resident memory after 300
  warm-up requests, 3,000 more one at a time, 6,000 at concurrency 32, then after each further
  12,000 at concurrency 32 (``--rounds``). A server whose record writer keeps up holds about
  the same memory from round to round.
* ``convoy``: sqlite3 inserting 2,000 rows in one transaction while another thread runs Python,
  one row per statement (``executemany``) against ``SQLITE_ROWS_PER_INSERT`` rows per statement:
  sqlite3 releases the GIL around every step, and gets it back only at the other thread's
  switch interval.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_gateway_memory.py [--rounds 3] [--source SRC]

``--source`` serves another mlwarden's ``src`` folder (e.g. an export of an earlier commit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import bench_gateway as bg
from gateway_peers import migrate_store, tree_rss_mb
from mlwarden.server.background import ServerProcess
from mlwarden.store.records import SQLITE_ROWS_PER_INSERT


def timeline(rounds: int, source: Path | None) -> None:
    _, artifact, _, bodies = bg.elec_workload()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        migrate_store(data, source)
        server = ServerProcess(data, source=source).start()
        marks: list[tuple[str, float]] = []
        try:
            pid = server.process.pid  # type: ignore[union-attr]
            bg.set_up_model(server.url, artifact)
            bg.sequential_latencies(server.port, bodies, 300)
            marks.append(("300 warm-up", tree_rss_mb(pid)))
            bg.sequential_latencies(server.port, bodies, 3000)
            marks.append(("+3,000 one at a time", tree_rss_mb(pid)))
            asyncio.run(bg.concurrent_latencies(server.port, bodies, 6000, 32))
            marks.append(("+6,000 at 32", tree_rss_mb(pid)))
            for number in range(1, rounds + 1):
                asyncio.run(bg.concurrent_latencies(server.port, bodies, 12000, 32))
                marks.append((f"+12,000 at 32 (#{number})", tree_rss_mb(pid)))
        finally:
            server.stop()
    print("server RSS (MB), load average", round(os.getloadavg()[0], 2))
    for label, rss in marks:
        print(f"  {label:24s} {rss:7.1f}")


def convoy() -> None:
    with tempfile.TemporaryDirectory() as folder:
        con = sqlite3.connect(os.path.join(folder, "convoy.db"), check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE r (id TEXT, m INT, f TEXT, p REAL, s TEXT, PRIMARY KEY (m, id))")
        con.execute("CREATE INDEX ix_r ON r (m, p)")
        stop = threading.Event()

        def busy() -> None:  # an event loop that always has Python to run
            total = 0
            while not stop.is_set():
                total += sum(i * i for i in range(1000))

        threading.Thread(target=busy, daemon=True).start()
        try:
            for label, per in (("1 row a statement", 1), (f"{SQLITE_ROWS_PER_INSERT} rows", 0)) * 2:
                per = per or SQLITE_ROWS_PER_INSERT
                rows = [
                    (f"{label}-{time.monotonic_ns()}-{i}", 1, '{"a": 1.5}', float(i), "x" * 40)
                    for i in range(2000)
                ]
                group = "(?, ?, ?, ?, ?)"
                full = len(rows) - len(rows) % per
                start = time.perf_counter()
                statements = [
                    tuple(v for row in rows[i : i + per] for v in row) for i in range(0, full, per)
                ]
                con.executemany(
                    "INSERT INTO r VALUES " + ", ".join([group] * per) + " ON CONFLICT DO NOTHING",
                    statements,
                )
                if full < len(rows):
                    rest = rows[full:]
                    con.execute(
                        "INSERT INTO r VALUES "
                        + ", ".join([group] * len(rest))
                        + " ON CONFLICT DO NOTHING",
                        tuple(v for row in rest for v in row),
                    )
                con.commit()
                elapsed = (time.perf_counter() - start) * 1000
                print(f"  2,000 rows, {label:18s} beside a busy thread: {elapsed:7.1f} ms")
        finally:
            stop.set()
            con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--skip-timeline", action="store_true")
    args = parser.parse_args()
    print("sqlite3 beside a busy thread (the record writer beside a loaded event loop):")
    convoy()
    if not args.skip_timeline:
        timeline(args.rounds, args.source)


if __name__ == "__main__":
    main()
