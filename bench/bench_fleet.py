"""A fleet in one store: the agent's pass over N models that each close one window a minute.

Every model is a small real scikit-learn model (a logistic regression on five Elec2 columns
of the bundled electricity data) with its own stored version, artifact and reference sample
(``--reference`` rows; the registry keeps up to 5,000), deployed and monitored, as
``Registry.add_sklearn_version`` stores them (the artifact and sample are made once and stored
for every model: the store holds N copies and the
agent loads each model's own). Records are written through the store's bulk API
(``Store.insert_records`` with pre-encoded JSON, ``Store.add_feedback`` for the labels), not
through HTTP: each model gets ``--window`` labelled records per minute of simulated time,
shuffled Elec2 rows scored by the model, so a window is like its reference. One model in 100
gets a null burst on ``nswdemand`` from the second minute on, so the agent opens and acts on
incidents too.

Then, per minute: the minute's records of every model are written, and one ``Agent.run_once``
(the real agent with the real ``MonitorSource``, default policy) is timed: wall and CPU seconds,
and the process's resident memory after it. With several ``--workers`` settings (default 1
and 2: ``Settings.agent_workers``, the monitors in the agent's process or in that many worker
processes) the seeded store is copied once per setting, every minute's records go to each copy
and the settings' passes run one after the other, in alternating order, so they are compared
in the same minutes; the workers' CPU seconds (``/proc``) and memory are given apart, and at
the end the stored windows, incidents and actions of the copies are compared
(``same_decisions``). The first pass builds each model's monitor (loads
its artifact, scores its reference sample); later passes are the steady state. At the end the
dashboard's fleet overview (``GET /ui/``, in-process through FastAPI's TestClient) is timed.

    .venv/bin/python bench/bench_fleet.py --models 100 1000 5000
    .venv/bin/python bench/bench_fleet.py --models 1000 --profile prof.txt   # cProfile of pass 1
    .venv/bin/python bench/bench_fleet.py --models 1000 --workers 2          # only 2 workers
    .venv/bin/python bench/bench_fleet.py --models 100 --database-url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from mlwarden.agent.loop import Agent, default_source
from mlwarden.agent.operations.service import Operations
from mlwarden.agent.workers import PooledSource
from mlwarden.clock import simulated_clock
from mlwarden.datasets import load
from mlwarden.domain import FeatureSpec, ModelSpec, Task
from mlwarden.registry.registry import Registry
from mlwarden.server import create_app
from mlwarden.settings import Settings
from mlwarden.store import Store
from mlwarden.store.base import canonical_json
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.journal import ActionJournal
from mlwarden.ui import mount_ui

# Elec2 without ``vicprice``: its long runs of one value make about one window in five of a
# healthy stream look rescaled (a data-quality finding), which would put a fifth of the fleet
# in a false incident; the fleet stands for the common case, healthy models
FEATURES = ["period", "nswprice", "nswdemand", "vicdemand", "transfer"]
START = datetime(2026, 1, 5, tzinfo=UTC)


def rss_mb() -> float:
    """The process's resident memory now (VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Pool:
    """Shuffled Elec2 rows, scored once, with every column a record needs already encoded."""

    def __init__(self, model: Any, rows: pd.DataFrame) -> None:
        proba = model.predict_proba(rows[FEATURES])
        classes = [int(c) for c in model.classes_]
        self.features = [canonical_json(r) for r in rows[FEATURES].to_dict(orient="records")]
        broken = rows[FEATURES].to_dict(orient="records")
        for r in broken:
            r["nswdemand"] = None
        self.broken = [canonical_json(r) for r in broken]
        predicted = np.asarray(classes)[proba.argmax(axis=1)]
        self.predictions = [json.dumps(int(p)) for p in predicted]
        self.scores = [
            canonical_json({str(c): float(p) for c, p in zip(classes, row, strict=True)})
            for row in proba
        ]
        self.labels = [int(v) for v in rows["target"]]

    def __len__(self) -> int:
        return len(self.labels)


def seed_models(
    store: Store, models: int, data: pd.DataFrame, reference_rows: int = 5000
) -> tuple[Any, pd.DataFrame]:
    """``models`` monitored models, each with one deployed sklearn version; the estimator
    and the rows left for streaming."""
    train, reference, rest = data.iloc[:3000], data.iloc[3000:8000], data.iloc[8000:]
    model = LogisticRegression(max_iter=1000).fit(train[FEATURES], train["target"])
    registry = Registry(store)
    for m in range(models):
        name = f"m{m:05d}"
        store.create_model(
            ModelSpec(
                name=name,
                task=Task.CLASSIFICATION,
                features=[FeatureSpec(name=f) for f in FEATURES],
                target="target",
                positive_class=1,
            ),
            actor="bench",
        )
        if m == 0:
            first = registry.add_sklearn_version(
                name,
                model,
                X_reference=reference[FEATURES],
                y_reference=reference["target"],
                importance=False,
                reference_rows=reference_rows,
                actor="bench",
            )
            artifact = store.load_artifact(name, 1)
            sample = store.reference_sample(name, 1)
            metrics = first.training_metrics
        else:
            store.add_version(
                name,
                kind="sklearn",
                artifact=artifact,
                training_metrics=metrics,
                reference_sample=sample,
                actor="bench",
            )
        Operations(store, actor="bench").deploy(name, 1, reason="bench")
        store.set_monitoring(name, True, actor="bench")
    return model, rest


def write_minute(store: Store, pool: Pool, models: int, window: int, minute: int) -> None:
    """One minute of traffic: ``window`` labelled records for every model, in one bulk write
    per 100 models."""
    at = START + timedelta(minutes=minute)
    step = timedelta(seconds=60 / window)
    times = [at + step * i for i in range(window)]
    chunk: list[dict[str, Any]] = []
    labels: dict[str, list[tuple[str, int]]] = {}
    for m in range(models):
        name = f"m{m:05d}"
        broken = m % 100 == 1 and minute >= 1
        offset = (m * 7919 + minute * window) % (len(pool) - window)
        labelled = labels.setdefault(name, [])
        for i in range(window):
            k = offset + i
            rid = f"{minute}-{i}"
            chunk.append(
                {
                    "id": rid,
                    "model": name,
                    "version": 1,
                    "timestamp": times[i],
                    "received_at": times[i],
                    "features_json": pool.broken[k] if broken and i % 2 else pool.features[k],
                    "prediction_json": pool.predictions[k],
                    "scores_json": pool.scores[k],
                    "latency_ms": 4.0 + (k % 13) * 0.3,
                    "served_by": "live",
                }
            )
            labelled.append((rid, pool.labels[k]))
        if len(chunk) >= 100 * window or m == models - 1:
            store.insert_records(chunk)
            chunk = []
    for name, pairs in labels.items():
        store.add_feedback(name, pairs, ts=at + timedelta(seconds=59))


@contextmanager
def cpu_timer() -> Iterator[dict[str, float]]:
    out: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    yield out
    out["wall_s"] = time.perf_counter() - wall
    out["cpu_s"] = time.process_time() - cpu


def proc_cpu_s(pid: int) -> float:
    """User and system CPU seconds a process has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    """A process's resident memory now (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pool_of(agent: Agent) -> PooledSource | None:
    return agent.source if isinstance(agent.source, PooledSource) else None


def workers_cpu_s(agent: Agent) -> float:
    pool = pool_of(agent)
    return sum(proc_cpu_s(p) for p in pool.worker_pids()) if pool else 0.0


def incidents_of(store: Store) -> list[tuple[Any, ...]]:
    """Every incident (model, scope, state, first window, diagnosis) and action (model, kind,
    state): what the agent decided, compared between the worker settings."""
    repo = AgentRepo(store)
    found: list[tuple[Any, ...]] = [
        (
            "incident",
            i["model"],
            i.get("scope"),
            i["state"],
            i["first_window"],
            i["last_window"],
            i["diagnosis"],
            i["severity"],
        )
        for i in repo.list_incidents(limit=100_000)
    ]
    journal = ActionJournal(store)
    found += [("action", a["model"], a["kind"], a["state"]) for a in journal.list(limit=100_000)]
    database = store.engine.url.database
    if store.dialect == "sqlite" and database:  # and every stored signal of every window
        with sqlite3.connect(database) as conn:
            rows = conn.execute(
                "SELECT model_id, window, name, value FROM signals ORDER BY 1, 2, 3"
            ).fetchall()
        found.append(("signals", len(rows), hash(tuple(rows))))
    return sorted(found, key=repr)


def run(models: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Seed one store, copy it once per ``--workers`` setting (SQLite), then per minute write
    the same records to each and time one pass of each setting's agent, one after the
    other (the order alternating), so the settings are compared in the same minutes."""
    url = args.database_url or f"sqlite:///{folder / 'fleet.db'}"
    settings = Settings(
        data_dir=folder,
        database_url=url,
        auth=False,
        window_size=args.window,
        reference_size=args.window,
        window_settle_s=0.0,
    )
    store = Store(settings.resolved_database_url)
    data = load("electricity").sample(frac=1.0, random_state=0).reset_index(drop=True)
    clock = {"now": START}
    result: dict[str, Any] = {
        "models": models,
        "window": args.window,
        "reference": args.reference,
        "workers": args.workers,
        "passes": [],
    }
    with threadpool_limits(1), simulated_clock(lambda: clock["now"]):
        with cpu_timer() as seeded:
            model, rest = seed_models(store, models, data, args.reference)
        pool = Pool(model, rest)
        result["seed_models_s"] = round(seeded["wall_s"], 1)
        stores: dict[int, Store] = {}
        for workers in args.workers:
            if len(args.workers) == 1:
                stores[workers] = store
                continue
            if args.database_url:
                raise SystemExit("several --workers settings need SQLite (the store is copied)")
            copy = folder / f"fleet-{workers}.db"
            with sqlite3.connect(folder / "fleet.db") as source, sqlite3.connect(copy) as target:
                source.backup(target)
            stores[workers] = Store(f"sqlite:///{copy}")
        agents = {
            w: Agent(
                s,
                source=default_source(s, settings.model_copy(update={"agent_workers": w})),
            )
            for w, s in stores.items()
        }
        result["rss_before_mb"] = round(rss_mb(), 1)
        for minute in range(args.minutes):
            clock["now"] = START + timedelta(minutes=minute, seconds=59)
            with cpu_timer() as written:
                for s in stores.values():
                    write_minute(s, pool, models, args.window, minute)
            clock["now"] = START + timedelta(minutes=minute + 1)
            order = list(agents) if minute % 2 == 0 else list(reversed(agents))
            for workers in order:
                agent = agents[workers]
                # CPU time: on a shared machine the wall clock mostly measures the others
                profiler = (
                    cProfile.Profile(time.process_time)
                    if args.profile and minute == args.profile_pass
                    else None
                )
                before_workers = workers_cpu_s(agent)
                with cpu_timer() as timed:
                    if profiler:
                        profiler.enable()
                    summaries = agent.run_once()
                    if profiler:
                        profiler.disable()
                if profiler:
                    text = io.StringIO()
                    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(45)
                    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
                    path = Path(args.profile)  # one summary per setting: prof.txt -> prof-w2.txt
                    path.with_stem(f"{path.stem}-w{workers}").write_text(text.getvalue())
                pooled = pool_of(agent)
                errors = [s for s in summaries if "error" in s]
                incidents = sum(len(s.get("incidents", [])) for s in summaries)
                entry = {
                    "minute": minute,
                    "workers": workers,
                    "write_s": round(written["wall_s"], 1),
                    "pass_wall_s": round(timed["wall_s"], 2),
                    "pass_cpu_s": round(timed["cpu_s"], 2),
                    "workers_cpu_s": round(workers_cpu_s(agent) - before_workers, 2),
                    "rss_mb": round(rss_mb(), 1),
                    "workers_rss_mb": [
                        round(proc_rss_mb(p), 1) for p in (pooled.worker_pids() if pooled else [])
                    ],
                    "errors": len(errors),
                    "open_incidents": incidents,
                    "profiled": profiler is not None,
                    "load": round(os.getloadavg()[0], 1),
                }
                result["passes"].append(entry)
                print(f"  {models} models, minute {minute}: {entry}", flush=True)
        decided = {w: incidents_of(s) for w, s in stores.items()}
        first = next(iter(decided.values()))
        result["same_decisions"] = all(d == first for d in decided.values())
        result["incidents"] = sum(1 for d in first if d[0] == "incident")
        result["false_incident_scopes"] = false_incidents(next(iter(stores.values())), models)
        for agent in agents.values():
            if pool_of(agent):
                pool_of(agent).close()  # type: ignore[union-attr]
        result["dashboard_ms"] = dashboard_ms(settings, store, models, args.repeat)
    for s in stores.values():
        s.close()
    store.close()
    return result


def false_incidents(store: Store, models: int) -> dict[str, int]:
    """The incidents of the healthy models (all but the one in 100 with a null burst), by
    scope and finding kinds of the window that opened them: false alarms on a stationary
    stream."""
    repo = AgentRepo(store)
    counts: dict[str, int] = {}
    for incident in repo.list_incidents(limit=100_000):
        if int(incident["model"][1:]) % 100 == 1:
            continue
        key = str(incident["summary"]).split(" in window")[0]
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def dashboard_ms(settings: Settings, store: Store, models: int, repeat: int) -> dict[str, float]:
    """Median and slowest of ``repeat`` in-process ``GET /ui/`` (the fleet overview)."""
    app = create_app(settings, store)
    mount_ui(app)
    with TestClient(app) as client:
        page = client.get("/ui/")
        assert page.status_code == 200, page.status_code
        assert page.text.count('data-model="') == models, "the overview lists every model"
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get("/ui/")
            times.append((time.perf_counter() - started) * 1000)
    return {"median": round(statistics.median(times), 1), "max": round(max(times), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--window", type=int, default=1000, help="records per model per minute")
    parser.add_argument("--minutes", type=int, default=3, help="minutes (agent passes)")
    parser.add_argument(
        "--reference",
        type=int,
        default=5000,
        help="rows of each version's stored reference sample (the registry keeps at most 5,000)",
    )
    parser.add_argument("--repeat", type=int, default=10, help="overview requests timed")
    parser.add_argument("--database-url", help="an empty database (default: a new SQLite file)")
    parser.add_argument("--profile", help="write a cProfile summary of one pass here")
    parser.add_argument("--profile-pass", type=int, default=1, help="the pass profiled (0: cold)")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="agent_workers settings compared side by side (1: the monitors in the agent)",
    )
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results = []
    for models in args.models:
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            results.append(run(models, args, Path(folder)))
            results[-1]["total_s"] = round(time.perf_counter() - started, 1)
            print(json.dumps(results[-1]), flush=True)
    print(f"load average at the end: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
