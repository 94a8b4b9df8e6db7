"""Durable capture: what it costs, and what a SIGKILL loses with and without it.

Runs ``mlwarden serve --no-agent`` (SQLite, loopback) with the default batched capture and with
``MLWARDEN_DURABLE_CAPTURE=1``, the same real model as bench_gateway.py (logistic regression on
the bundled electricity data), and measures in one run:

1. cost: single-instance predictions at concurrency 32 (raw keep-alive HTTP/1.1 connections
   from one asyncio load generator, as bench_gateway.py), predictions/s, p50 and p99; the two
   modes alternate (default, durable, default, durable, ...) so both see the same machine;
2. loss per SIGKILL: predictions sent at concurrency 8 for a few seconds, the server
   SIGKILLed, started again on the same folder; once it has replayed what it recovered, every
   answered record id is looked up in the database: answered but not stored = lost.

    .venv/bin/python bench/bench_durability.py [--requests 3000] [--rounds 2] [--kills 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import select

from bench_gateway import concurrent_latencies, elec_workload, percentile, set_up_model
from mlwarden.server.background import ServerProcess
from mlwarden.store import Store
from mlwarden.store import tables as t

# a long predict timeout: on a busy machine a 2 s timeout turns slowness into failures
_BASE = {"MLWARDEN_PREDICT_TIMEOUT_MS": "30000"}
MODES = {"default": _BASE, "durable": {**_BASE, "MLWARDEN_DURABLE_CAPTURE": "1"}}


def stored_ids(data_dir: Path) -> set[str]:
    with (
        Store(f"sqlite:///{data_dir / 'mlwarden.db'}", migrate=False) as store,
        store.engine.connect() as conn,
    ):
        return set(conn.execute(select(t.records.c.id)).scalars())


class PredictLoad:
    """Single-instance predictions from ``concurrency`` keep-alive clients until ``stop``;
    keeps every answered record id and every failure (with when it happened)."""

    def __init__(self, url: str, bodies: list[bytes], headers: dict[str, str] | None = None):
        self.url = url
        self.bodies = bodies
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.answered: list[tuple[float, str]] = []
        self.failed: list[tuple[float, str]] = []
        self.stopping = asyncio.Event()

    async def run(self, concurrency: int) -> None:
        await asyncio.gather(*(self._worker(i) for i in range(concurrency)))

    def by_phase(self, name: str, start: float, end: float) -> dict[str, dict[str, int]]:
        """Answered and failed requests before ``start``, from it to ``end`` (the phase
        ``name``: an outage, a full disk) and after, by their ``time.monotonic()``."""
        bounds = {"before": (0.0, start), name: (start, end), "after": (end, float("inf"))}

        def count(items: list[tuple[float, str]], low: float, high: float) -> int:
            return sum(1 for when, _ in items if low <= when < high)

        return {
            outcome: {phase: count(items, *span) for phase, span in bounds.items()}
            for outcome, items in (("answered", self.answered), ("failed", self.failed))
        }

    async def _worker(self, offset: int) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            i = offset
            while not self.stopping.is_set():
                try:
                    response = await client.post(
                        "/v1/models/elec/predict",
                        content=self.bodies[i % len(self.bodies)],
                        headers=self.headers,
                    )
                except httpx.HTTPError as exc:  # the server is gone (killed)
                    self.failed.append((time.monotonic(), repr(exc)))
                    return
                if response.status_code == 200:
                    self.answered.append((time.monotonic(), response.json()["id"]))
                else:
                    self.failed.append((time.monotonic(), response.text[:200]))
                i += 1


async def answered_until_killed(
    server: ServerProcess, bodies: list[bytes], seconds: float, concurrency: int
) -> list[str]:
    """Send predictions for ``seconds``, SIGKILL the server, return the answered record ids."""
    load = PredictLoad(server.url, bodies)
    running = asyncio.create_task(load.run(concurrency))
    # the clock starts at the first answer: on a busy machine the clients take seconds to start
    while not load.answered and not running.done():
        await asyncio.sleep(0.05)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(server.kill)
    load.stopping.set()
    await running
    return [rid for _, rid in load.answered]


def wait_replayed(server: ServerProcess, timeout_s: float = 300) -> dict[str, Any]:
    """Until the server has nothing pending, journaled or held in memory; its last /health."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        health: dict[str, Any] = httpx.get(server.url + "/health", timeout=30).json()
        records = health["records"]
        if not (records["pending"] or records["spilled_to_journal"] or records["held_in_memory"]):
            return health
        time.sleep(0.5)
    raise TimeoutError("the server did not store what it held")


def ready(server: ServerProcess, body: bytes) -> None:
    """Until the server answers a prediction: a (re)started server first loads the model, and
    a kill before any answer would measure nothing."""
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=300) as client:
        client.post("/v1/models/elec/predict", content=body, headers=headers).raise_for_status()


def kill_losses(
    mode: str, artifact: bytes, bodies: list[bytes], kills: int, seconds: float
) -> list[dict[str, float]]:
    out = []
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        server = ServerProcess(data, env=MODES[mode]).start()
        try:
            set_up_model(server.url, artifact)
            for _ in range(kills):
                ready(server, bodies[0])
                answered = asyncio.run(answered_until_killed(server, bodies, seconds, 8))
                server = ServerProcess(data, env=MODES[mode]).start()
                wait_replayed(server)
                missing = set(answered) - stored_ids(data)
                out.append({"answered": len(answered), "lost": len(missing)})
                print(f"{mode}: SIGKILL {out[-1]}", file=sys.stderr, flush=True)
        finally:
            server.stop()
    return out


def cost(
    mode: str, artifact: bytes, bodies: list[bytes], requests: int, concurrency: int
) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory() as folder,
        ServerProcess(Path(folder) / "data", env=MODES[mode]) as server,
    ):
        set_up_model(server.url, artifact)
        asyncio.run(concurrent_latencies(server.port, bodies, 600, concurrency))  # warm-up
        latencies, throughput = asyncio.run(
            concurrent_latencies(server.port, bodies, requests, concurrency)
        )
    return {
        "predictions_per_s": round(throughput, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "load_average_1min": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="cost runs per mode, alternated")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per mode")
    parser.add_argument("--load-seconds", type=float, default=4.0, help="load before each kill")
    args = parser.parse_args()

    _, artifact, _, bodies = elec_workload()

    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            runs[mode].append(cost(mode, artifact, bodies, args.requests, args.concurrency))
            print(f"{mode}: cost {runs[mode][-1]}", file=sys.stderr, flush=True)
    kills = {
        mode: kill_losses(mode, artifact, bodies, args.kills, args.load_seconds) for mode in MODES
    }
    results: dict[str, object] = {"cpus": os.cpu_count()}
    if args.rounds:
        results[f"cost_at_concurrency_{args.concurrency}"] = runs
        results["median_predictions_per_s"] = {
            mode: float(np.median([r["predictions_per_s"] for r in rs]))
            for mode, rs in runs.items()
        }
    results |= {
        "sigkill": kills,
        "lost_per_kill": {mode: [k["lost"] for k in ks] for mode, ks in kills.items()},
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
