"""Gateway overhead: mlwarden against its floor and its peers, same model, same client, same run.

Starts, one after another in each round (the order turns from round to round, so no server
always runs on a warmer or quieter machine):

- ``floor``: the bare Starlette handler with the same model (``bench/gateway_floor.py``:
  parse JSON, NumPy row, ``predict_proba``, JSON answer; nothing validated or recorded);
- ``mlwarden``: ``mlwarden serve --no-agent`` (one Uvicorn worker, SQLite in a temporary
  folder, every prediction validated and recorded through the batched writer);
- ``mlserver`` and ``bentoml`` when their side virtualenvs are given (``bench/gateway_peers.py``).

Each server answers a logistic regression on the bundled electricity data (6 numeric
features): 300 warm-up requests, then single-instance predictions at concurrency 1 (one
keep-alive connection) and at concurrency 32 (32 keep-alive connections from one asyncio load
generator): throughput, median and p99, server CPU per request, and the resident memory of the
server (its process tree) after the load. mlwarden's recorded count is checked against the
requests it answered. The load generator runs on the same machine and shares its cores, so
every figure includes its cost; the ratios to the floor of the same round are what compare.
Request counts are bounded; every server only listens on loopback.

    .venv/bin/python bench/bench_gateway.py [--rounds 3] [--requests 3000] [--concurrency 32]
        [--mlserver-venv /tmp/gw-mlserver] [--bentoml-venv /tmp/gw-bentoml]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import skops.io
from sklearn.linear_model import LogisticRegression

from gateway_peers import (
    Running,
    start_bentoml,
    start_floor,
    start_mlserver,
    start_mlwarden,
    tree_cpu_s,
    tree_rss_mb,
)
from mlwarden.datasets import load
from mlwarden.settings import Settings
from mlwarden.store import Store

FEATURES = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
PREDICT = "/v1/models/elec/predict"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report CPU per request."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def set_up_model(url: str, artifact: bytes, headers: dict[str, str] | None = None) -> None:
    spec = {
        "name": "elec",
        "task": "classification",
        "features": [{"name": n, "nullable": False} for n in FEATURES],
    }
    with httpx.Client(base_url=url, timeout=120, headers=headers) as client:
        client.post("/v1/models", json=spec).raise_for_status()
        client.post(
            "/v1/models/elec/versions", files={"file": ("m.skops", artifact)}
        ).raise_for_status()
        client.put("/v1/models/elec/deployment", json={"live_version": 1}).raise_for_status()


def direct_latencies(model: Any, rows: list[dict[str, float]], n: int) -> list[float]:
    """What a caller pays to predict in-process: build the row, predict_proba, read it."""
    out = []
    for i in range(n):
        row = rows[i % len(rows)]
        start = time.perf_counter()
        x = np.array([[row[name] for name in FEATURES]], dtype=float)
        proba = model.predict_proba(x)[0]
        _ = {"0": float(proba[0]), "1": float(proba[1])}
        out.append((time.perf_counter() - start) * 1000)
    return out


def sequential_latencies(
    port: int, bodies: list[bytes], n: int, path: str = PREDICT
) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json"}
    out = []
    for i in range(n):
        start = time.perf_counter()
        connection.request("POST", path, bodies[i % len(bodies)], headers)
        response = connection.getresponse()
        payload = response.read()
        out.append((time.perf_counter() - start) * 1000)
        if response.status != 200:
            raise RuntimeError(payload.decode())
    connection.close()
    return out


async def _worker(
    port: int, bodies: list[bytes], count: int, out: list[float], path: str = PREDICT
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(count):
        body = bodies[i % len(bodies)]
        request = (
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        start = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        payload = await reader.readexactly(length)
        out.append((time.perf_counter() - start) * 1000)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(payload.decode())
    writer.close()


async def concurrent_latencies(
    port: int, bodies: list[bytes], n: int, concurrency: int, path: str = PREDICT
) -> tuple[list[float], float]:
    out: list[float] = []
    per_worker = n // concurrency
    start = time.perf_counter()
    await asyncio.gather(
        *(_worker(port, bodies[i:] + bodies[:i], per_worker, out, path) for i in range(concurrency))
    )
    elapsed = time.perf_counter() - start
    return out, len(out) / elapsed


def summary(name: str, values: list[float], direct: list[float]) -> dict[str, float]:
    median, p99 = statistics.median(values), percentile(values, 99)
    return {
        "case": name,  # type: ignore[dict-item]
        "requests": len(values),
        "median_ms": round(median, 3),
        "p99_ms": round(p99, 3),
        "median_overhead_ms": round(median - statistics.median(direct), 3),
        "p99_overhead_ms": round(p99 - percentile(direct, 99), 3),
    }


def elec_workload() -> tuple[Any, bytes, list[dict[str, float]], list[bytes]]:
    """The benchmarks' model, its skops artifact, 1,000 held-out rows and their predict bodies."""
    # the model is fitted on a DataFrame and called with NumPy rows, as the gateway does
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    frame = load("electricity")
    model = LogisticRegression(max_iter=500).fit(
        frame[FEATURES].iloc[:20000], frame["target"].iloc[:20000]
    )
    artifact = skops.io.dumps(model)
    rows = frame[FEATURES].iloc[20000:21000].to_dict(orient="records")
    bodies = [json.dumps({"instances": row}).encode() for row in rows]
    return model, artifact, rows, bodies


def measure(
    server: Running, requests: int, concurrency: int, warmup: int
) -> dict[str, float | int | str]:
    """Warm up, then concurrency 1 and concurrency ``concurrency`` against one started server."""
    bodies, path, port = server.bodies, server.path, server.port
    sequential_latencies(port, bodies, warmup, path)
    cpu_start = tree_cpu_s(server.pid)
    one = sequential_latencies(port, bodies, requests, path)
    cpu_one = tree_cpu_s(server.pid)
    many, throughput = asyncio.run(
        concurrent_latencies(port, bodies, requests * 2, concurrency, path)
    )
    cpu_many = tree_cpu_s(server.pid)
    return {
        "server": server.name,
        "answered": warmup + len(one) + len(many),
        "c1_median_ms": round(statistics.median(one), 3),
        "c1_p99_ms": round(percentile(one, 99), 3),
        "throughput_per_s": round(throughput, 1),
        "median_ms": round(statistics.median(many), 2),
        "p99_ms": round(percentile(many, 99), 2),
        "cpu_ms_per_request": round((cpu_many - cpu_one) * 1000 / len(many), 3),
        "c1_cpu_ms_per_request": round((cpu_one - cpu_start) * 1000 / len(one), 3),
        "rss_mb": round(tree_rss_mb(server.pid), 1),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def recorded(data_dir: Path) -> int:
    """The records mlwarden stored for the benchmark's model (after a clean stop)."""
    store = Store.from_settings(Settings(data_dir=data_dir))
    try:
        return store.count_records("elec")
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--mlserver-venv", type=Path, default=None)
    parser.add_argument("--bentoml-venv", type=Path, default=None)
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="another mlwarden's src folder (e.g. main's) served as 'mlwarden-base', same rounds",
    )
    parser.add_argument(
        "--servers",
        default="floor,mlwarden,mlwarden-base,mlserver,bentoml",
        help="comma-separated",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()

    model, artifact, rows, bodies = elec_workload()
    direct = direct_latencies(model, rows, args.requests)
    starters: dict[str, Callable[[Path], Running]] = {
        "floor": lambda folder: start_floor(folder, artifact, bodies),
        "mlwarden": lambda folder: start_mlwarden(folder, artifact, bodies, set_up_model),
    }
    if args.baseline_src is not None:
        base = args.baseline_src.resolve()
        starters["mlwarden-base"] = lambda folder: start_mlwarden(
            folder, artifact, bodies, set_up_model, source=base
        )
    skipped: dict[str, str] = {}
    for name, venv, start in (
        ("mlserver", args.mlserver_venv, start_mlserver),
        ("bentoml", args.bentoml_venv, start_bentoml),
    ):
        if venv is None:
            skipped[name] = f"no --{name}-venv given"
        else:
            starters[name] = lambda folder, start=start, venv=venv: start(
                folder,
                model=model,
                artifact=artifact,
                bodies=bodies,
                rows=rows,
                features=FEATURES,
                venv=venv,
            )
    names = [n for n in args.servers.split(",") if n in starters]
    results: list[dict[str, Any]] = []
    for round_number in range(1, args.rounds + 1):
        shift = (round_number - 1) % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            with tempfile.TemporaryDirectory() as folder:
                try:
                    server = starters[name](Path(folder))
                except Exception as exc:  # a peer that does not start is reported, not fatal
                    skipped[name] = f"{type(exc).__name__}: {str(exc)[-500:]}"
                    continue
                try:
                    row = measure(server, args.requests, args.concurrency, args.warmup)
                finally:
                    server.stop()
                if name.startswith("mlwarden"):
                    row["recorded"] = recorded(Path(folder) / "data")
                row["round"] = round_number
                results.append(row)
                print(json.dumps(row), flush=True)
    output = {
        "cpus": os.cpu_count(),
        "direct_predict": {
            "median_ms": round(statistics.median(direct), 3),
            "p99_ms": round(percentile(direct, 99), 3),
        },
        "runs": results,
        "ratios_to_floor": ratios(results),
        "skipped": skipped,
    }
    text = json.dumps(output, indent=2)
    if args.out is not None:
        args.out.write_text(text)
    print(text)


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per round, each server's throughput, p99 and memory against the floor of that round."""
    out = []
    for row in results:
        floor = next(
            (r for r in results if r["server"] == "floor" and r["round"] == row["round"]), None
        )
        if floor is None or row["server"] == "floor":
            continue
        out.append(
            {
                "round": row["round"],
                "server": row["server"],
                "throughput_ratio": round(row["throughput_per_s"] / floor["throughput_per_s"], 2),
                "p99_ratio": round(row["p99_ms"] / floor["p99_ms"], 2),
                "rss_over_floor_mb": round(row["rss_mb"] - floor["rss_mb"], 1),
            }
        )
    return out


if __name__ == "__main__":
    main()
