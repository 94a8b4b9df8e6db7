"""Gateway overhead: latency through HTTP minus a direct in-process predict, and throughput.

Starts ``mlwarden serve --no-agent`` (one Uvicorn worker; the agent loop is left out so only
the gateway is measured) on a free 127.0.0.1 port with a real
scikit-learn model (logistic regression on the bundled electricity data, 6 numeric features),
then measures in the same run:

1. the direct in-process ``predict_proba`` of the same model on one instance (NumPy row);
2. single-instance predictions through HTTP at concurrency 1 (one keep-alive connection);
3. the same at concurrency 32 (32 keep-alive connections from one asyncio load generator).

Overhead = gateway latency percentile minus the direct predict percentile. The load generator
runs on the same machine as the server and shares its cores, so the figures include its cost.
Request counts are bounded; the server only ever listens on loopback.

    .venv/bin/python bench/bench_gateway.py [--requests 3000] [--concurrency 32]
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
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import skops.io
from sklearn.linear_model import LogisticRegression

from mlwarden.datasets import load
from mlwarden.server.background import ServerProcess

FEATURES = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]


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


def sequential_latencies(port: int, bodies: list[bytes], n: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json"}
    out = []
    for i in range(n):
        start = time.perf_counter()
        connection.request("POST", "/v1/models/elec/predict", bodies[i % len(bodies)], headers)
        response = connection.getresponse()
        payload = response.read()
        out.append((time.perf_counter() - start) * 1000)
        if response.status != 200:
            raise RuntimeError(payload.decode())
    connection.close()
    return out


async def _worker(port: int, bodies: list[bytes], count: int, out: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(count):
        body = bodies[i % len(bodies)]
        request = (
            b"POST /v1/models/elec/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
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
    port: int, bodies: list[bytes], n: int, concurrency: int
) -> tuple[list[float], float]:
    out: list[float] = []
    per_worker = n // concurrency
    start = time.perf_counter()
    await asyncio.gather(
        *(_worker(port, bodies[i:] + bodies[:i], per_worker, out) for i in range(concurrency))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()

    model, artifact, rows, bodies = elec_workload()

    direct = direct_latencies(model, rows, args.requests)
    with tempfile.TemporaryDirectory() as data_dir:
        server = ServerProcess(Path(data_dir) / "data").start()
        port, pid = server.port, server.process.pid  # type: ignore[union-attr]
        try:
            set_up_model(f"http://127.0.0.1:{port}", artifact)
            sequential_latencies(port, bodies, args.warmup)
            cpu_start = cpu_seconds(pid)
            one = sequential_latencies(port, bodies, args.requests)
            cpu_one = cpu_seconds(pid)
            many, throughput = asyncio.run(
                concurrent_latencies(port, bodies, args.requests * 2, args.concurrency)
            )
            cpu_many = cpu_seconds(pid)
            stored = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        finally:
            server.stop()
    answered = sum(
        float(line.rsplit(" ", 1)[1])
        for line in stored.splitlines()
        if line.startswith("mlwarden_predictions_total{")
    )
    results = {
        "cpus": os.cpu_count(),
        "direct_predict": {
            "median_ms": round(statistics.median(direct), 3),
            "p99_ms": round(percentile(direct, 99), 3),
        },
        "http_c1": summary("concurrency 1", one, direct),
        f"http_c{args.concurrency}": {
            **summary(f"concurrency {args.concurrency}", many, direct),
            "throughput_per_s": round(throughput, 1),
        },
        "server_cpu_ms_per_request": {
            "concurrency 1": round((cpu_one - cpu_start) * 1000 / len(one), 3),
            f"concurrency {args.concurrency}": round((cpu_many - cpu_one) * 1000 / len(many), 3),
        },
        "load_average_1min_at_end": os.getloadavg()[0],
        "predictions_counted_by_server": answered,
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
