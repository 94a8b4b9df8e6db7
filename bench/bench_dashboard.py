"""Server-side render time of the dashboard's fleet overview.

A SQLite store gets 20 models with 10,000 closed windows each and 6 signals per window
(accuracy, estimated accuracy, p50/p99 latency, error rate, one drift score): 1.2 million signal
rows, written with bulk Core inserts like the agent's. A few models get an open incident and
findings in their last window. Then ``GET /ui/`` is timed in-process (FastAPI TestClient, session
cookie of the local admin) along with the query alone and the live JSON endpoint.

Run: ``.venv/bin/python bench/bench_dashboard.py [--models 20] [--windows 10000] [--repeat 20]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert

from mlwarden.domain import DeploymentState, FeatureSpec, ModelSpec, Task
from mlwarden.server import create_app
from mlwarden.settings import Settings
from mlwarden.store import Store
from mlwarden.store import agent_tables as at
from mlwarden.ui import mount_ui, queries

SIGNALS = (
    "accuracy",
    "estimated.accuracy",
    "latency_p50_ms",
    "latency_p99_ms",
    "error_rate",
    "drift.psi.x0",
)


def fill(store: Store, models: int, windows: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for m in range(models):
        name = f"model-{m:02d}"
        store.create_model(
            ModelSpec(
                name=name,
                task=Task.CLASSIFICATION,
                features=[FeatureSpec(name=f"x{k}") for k in range(4)],
                target="y",
            )
        )
        store.add_version(name, kind="remote", endpoint={"url": "http://127.0.0.1:1/predict"})
        store.set_deployment(name, DeploymentState(live_version=1), actor="bench", reason="bench")
        model_id = store.model_id(name)
        rows = []
        for w in range(1, windows + 1):
            ts = start + timedelta(minutes=10 * w)
            wave = math.sin(w / 50 + m)
            values = (0.85 + 0.05 * wave, 0.84 + 0.04 * wave, 8 + wave, 40 + 5 * wave, 0.01, 0.05)
            rows.extend(
                {"model_id": model_id, "window": w, "ts": ts, "name": n, "value": v}
                for n, v in zip(SIGNALS, values, strict=True)
            )
        with store.engine.begin() as conn:
            for k in range(0, len(rows), 50_000):
                conn.execute(insert(at.signals), rows[k : k + 50_000])
            if m % 4 == 0:
                now = start + timedelta(minutes=10 * windows)
                conn.execute(
                    insert(at.incidents).values(
                        model_id=model_id,
                        state="open",
                        severity="high",
                        kinds=["latency"],
                        features=[],
                        first_window=windows - 3,
                        last_window=windows,
                        baseline={},
                        timeline=[],
                        summary="bench",
                        opened_at=now,
                        updated_at=now,
                    )
                )
                conn.execute(
                    insert(at.findings).values(
                        model_id=model_id,
                        window=windows,
                        ts=now,
                        kind="latency",
                        detector="bench",
                        features=[],
                        statistic="latency_p99_ratio",
                        score=3.0,
                        threshold=1.5,
                        message="bench",
                        evidence={},
                    )
                )


def timed(fn: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(name: str, ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"{name:<34} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   "
        f"min {ordered[0]:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--windows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), auth=False)
        store = Store(settings.resolved_database_url)
        t0 = time.perf_counter()
        fill(store, args.models, args.windows)
        rows = args.models * args.windows * len(SIGNALS)
        print(f"filled {rows:,} signal rows in {time.perf_counter() - t0:.1f} s")
        app = create_app(settings, store)
        mount_ui(app)
        with TestClient(app) as client:
            page = client.get("/ui/")
            assert page.status_code == 200 and page.text.count('data-model="') == args.models
            client.get("/ui/live/overview")
            print(
                summary(
                    "fleet query (queries.fleet)",
                    timed(lambda: queries.fleet(store.engine), args.repeat),
                )
            )
            print(summary("GET /ui/ (full render)", timed(lambda: client.get("/ui/"), args.repeat)))
            print(
                summary(
                    "GET /ui/live/overview (JSON)",
                    timed(lambda: client.get("/ui/live/overview"), args.repeat),
                )
            )
            print(
                summary(
                    "GET /ui/models/model-00", timed(lambda: client.get("/ui/models/model-00"), 5)
                )
            )
        store.close()


if __name__ == "__main__":
    main()
