"""Server-side time and bytes of every dashboard page, on a store like the demo's; and the fleet
overview on a large fleet.

``pages`` (the default): the scenario simulator runs the demo scenario (``demo.yaml``: the
electricity model, a null burst, then concept drift; the real agent opens, acts on and closes
incidents and queues an approval) into a SQLite store. Each page is then asked for in-process
(FastAPI TestClient, ``Accept-Encoding: gzip`` like a browser, the local admin's session) and
the median of ``--repeat`` requests is printed with the bytes that went over the wire. An
incident page's first view is printed on its own: a closed incident's later views may be
answered from the report cache. Then ``--after-window`` rounds (default 5) time an open
incident's first view after a new window: each round closes one more window of the model (a
copy of its newest window's signals an interval later, saved as the agent saves one, and the
incident's last window moved to it), tells the server's diagnosis warmer as the agent in the
server does after a pass (when the server has one), and asks for the page at once and again
after ``--settle`` seconds (a person opening it a moment after the window closed).
``--warm-up`` seconds pass before the first new window (a server past its first seconds).

``fleet``: a SQLite store gets 20 models with 10,000 closed windows each and 6 signals per
window (accuracy, estimated accuracy, p50/p99 latency, error rate, one drift score): 1.2 million
signal rows, written with bulk Core inserts like the agent's. A few models get an open incident
and findings in their last window. Then ``GET /ui/`` is timed along with the query alone and the
live JSON endpoint.

``investigations``: one real investigation (``run_investigation``) of a real scikit-learn
model behind a local HTTP server that degrades midway; its stored result and records are then
scaled to the limit (50,000 probe records, one window per 100 probes after the baseline) and
copied into ``--investigations`` investigations (default 100, the list's length). The list, the
big investigation's page and their live JSON are timed, and a page of its records against all of
them at once (what ``?records=true`` answered before it was paged).

Run: ``.venv/bin/python bench/bench_dashboard.py [pages] [--repeat 15] [--store simulation.db]``,
``.venv/bin/python bench/bench_dashboard.py fleet [--models 20] [--windows 10000] [--repeat 20]``
or ``.venv/bin/python bench/bench_dashboard.py investigations [--investigations 100]``
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import insert

from mlwarden.domain import DeploymentState, FeatureSpec, ModelSpec, Task
from mlwarden.server import create_app
from mlwarden.settings import Settings
from mlwarden.store import Store
from mlwarden.store import agent_tables as at
from mlwarden.ui import mount_ui, queries

GZIP = {"Accept-Encoding": "gzip"}

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
        name = f"model-{m:02d}" if models <= 100 else f"model-{m:04d}"
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


def timed(fn: object, repeat: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of ``repeat`` calls (CPU: the process's, the server thread's
    included; on a shared machine the wall clock mostly measures the other processes)."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()  # type: ignore[operator]
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return wall, cpu


def summary(name: str, times: tuple[list[float], list[float]]) -> str:
    ms, cpu = times
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"{name:<34} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   "
        f"min {ordered[0]:7.1f} ms   CPU median {statistics.median(cpu):7.1f} ms"
    )


def fleet_bench(args: argparse.Namespace) -> None:
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
                    timed(lambda: queries.fleet(store), args.repeat),
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
                    "GET /ui/models/<first>",
                    timed(lambda: client.get(f"/ui/models/{store.model_names()[0]}"), 5),
                )
            )
        store.close()


def demo_store(folder: Path) -> Path:
    """Run the demo scenario with the simulator; the path of its SQLite store."""
    from mlwarden.scenarios.simulate import Simulation
    from mlwarden.scenarios.spec import load_scenario

    t0 = time.perf_counter()
    result = Simulation(load_scenario("demo"), folder / "sim").run()
    print(f"simulated the demo scenario in {time.perf_counter() - t0:.1f} s")
    return result.out / "simulation.db"


def request(client: TestClient, path: str) -> tuple[float, int, str]:
    """(ms, bytes received, content encoding) of one GET."""
    t0 = time.perf_counter()
    response = client.get(path, headers=GZIP)
    ms = (time.perf_counter() - t0) * 1000
    assert response.status_code == 200, (path, response.status_code)
    return ms, response.num_bytes_downloaded, response.headers.get("content-encoding", "identity")


def page_line(name: str, ms: list[float], size: int, encoding: str) -> str:
    p90 = statistics.quantiles(ms, n=10, method="inclusive")[-1] if len(ms) > 1 else ms[0]
    return (
        f"{name:<44} median {statistics.median(ms):8.1f} ms   p90 {p90:8.1f} ms   "
        f"max {max(ms):8.1f} ms   {size:>10,} bytes ({encoding})"
    )


def pages_bench(args: argparse.Namespace) -> None:
    from mlwarden.store.incidents import OPEN_STATES, AgentRepo

    with tempfile.TemporaryDirectory() as folder:
        if args.store is None:
            db = demo_store(Path(folder))
        else:  # a copy: the pages write sessions, and the same store can serve two runs
            db = Path(folder) / "simulation.db"
            shutil.copyfile(args.store, db)
        settings = Settings(
            data_dir=Path(folder) / "data", database_url=f"sqlite:///{db}", auth=False
        )
        store = Store(settings.resolved_database_url)
        app = create_app(settings, store)
        mount_ui(app)
        model = store.model_names()[0]
        incidents = AgentRepo(store).list_incidents(model=model, limit=50)
        with TestClient(app) as client:
            client.get("/ui/")  # the local admin's session cookie
            print(f"model {model!r}: {len(incidents)} incidents, repeat {args.repeat}")
            for incident in sorted(incidents, key=lambda i: i["id"]):
                path = f"/ui/incidents/{incident['id']}"
                first = request(client, path)
                print(page_line(f"{path} ({incident['state']}) first view", [first[0]], *first[1:]))
            # a server that has run for a while (its warmer's first pass done, a diagnosis
            # process started), not one at its first seconds
            time.sleep(args.warm_up)
            for incident in sorted(incidents, key=lambda i: i["id"]):
                if incident["state"] in OPEN_STATES:
                    after_window(client, store, app, incident["id"], args)
            paths = [
                "/ui/",
                f"/ui/models/{model}",
                f"/ui/live/models/{model}",
                "/ui/incidents",
                *(f"/ui/incidents/{i['id']}" for i in sorted(incidents, key=lambda i: i["id"])),
                "/ui/approvals",
                "/ui/audit",
                "/ui/live/counts",
            ]
            assets = [
                link
                for link in _asset_links(client.get(f"/ui/models/{model}").text)
                if link.startswith("/ui/")
            ]
            for path in [*paths, *assets]:
                runs = [request(client, path) for _ in range(args.repeat)]
                print(page_line(path, [r[0] for r in runs], runs[-1][1], runs[-1][2]))
        store.close()


def after_window(
    client: TestClient, store: Store, app: object, incident_id: int, args: argparse.Namespace
) -> None:
    """Time an open incident's page right after each of ``args.after_window`` new windows, and
    ``args.settle`` seconds after another."""
    from mlwarden.store.incidents import AgentRepo

    repo = AgentRepo(store)
    warmer = getattr(app.state, "diagnosis_warmer", None)  # type: ignore[attr-defined]
    path = f"/ui/incidents/{incident_id}"
    for when in ("at once", f"{args.settle:g} s later"):
        runs = []
        for _ in range(args.after_window):
            new_window(repo, repo.get_incident(incident_id))
            if warmer is not None:
                warmer.wake()
            if when != "at once":
                time.sleep(args.settle)
            runs.append(request(client, path))
        print(page_line(f"{path} after a new window, {when}", [r[0] for r in runs], *runs[-1][1:]))
        print("    each view, ms:", " ".join(f"{r[0]:.0f}" for r in runs))


def new_window(repo: object, incident: dict) -> None:
    """One more closed window of the incident's model, as the agent saves one: the newest
    window's signals copied ten minutes later; the open incident covers it."""
    store = repo.store  # type: ignore[attr-defined]
    model = incident["model"]
    newest = repo.last_window(model)  # type: ignore[attr-defined]
    rows = repo.signal_rows_between(store.model_id(model), newest, newest)  # type: ignore[attr-defined]
    values = {r.name: r.value for r in rows if r.name != "window.closed"}
    ts = max(r.ts for r in rows) + timedelta(minutes=10)
    repo.save_window(model, newest + 1, ts, values, [])  # type: ignore[attr-defined]
    repo.update_incident(incident["id"], last_window=newest + 1)  # type: ignore[attr-defined]


class _Model:
    """A logistic regression served on a loopback port (the generic JSON protocol) whose
    confidence collapses after ``degrade_after`` calls."""

    def __init__(self, degrade_after: int) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import numpy as np
        from sklearn.datasets import make_classification
        from sklearn.linear_model import LogisticRegression

        X, y = make_classification(
            n_samples=2_300, n_features=5, n_informative=4, n_redundant=0, n_classes=4,
            n_clusters_per_class=1, class_sep=2.5, random_state=0,
        )  # fmt: skip
        model = LogisticRegression(max_iter=1000).fit(X[:2_000], y[:2_000])
        self.rows = [{f"x{k}": float(v) for k, v in enumerate(row)} for row in X[2_000:]]
        calls = [0]

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                calls[0] += 1
                frame = np.array([[r[f"x{k}"] for k in range(5)] for r in body["instances"]])
                answers = []
                for p in model.predict_proba(frame):
                    if calls[0] > degrade_after:
                        p = 0.2 * p + 0.2
                    answers.append(
                        {
                            "prediction": int(np.argmax(p)),
                            "probabilities": {str(k): float(v) for k, v in enumerate(p)},
                        }
                    )
                data = json.dumps({"predictions": answers}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/predict"


def investigations_bench(args: argparse.Namespace) -> None:
    """See the module's docstring: ``investigations``."""
    from mlwarden.agent.investigate import MAX_PROBES, InvestigationRequest, run_investigation
    from mlwarden.store.investigations import InvestigationRepo

    baseline, window_size = 200, 100
    served = _Model(degrade_after=baseline + window_size)
    with tempfile.TemporaryDirectory() as folder:
        policy = Path(folder) / "policy.yaml"
        policy.write_text("version: 1\ndefaults:\n  detection:\n    latency_ratio: 1000\n")
        settings = Settings(data_dir=Path(folder) / "data", auth=False, agent_policy=policy)
        store = Store(settings.resolved_database_url)
        t0 = time.perf_counter()
        wanted = InvestigationRequest(
            url=served.url,
            rows=served.rows,
            baseline=baseline,
            windows=3,
            window_size=window_size,
            rate_per_s=1000,
        )
        real = run_investigation(store, wanted, actor="bench", settings=settings)
        assert real["state"] == "done" and real["result"]["incident"], real["error"]
        print(f"one real investigation in {time.perf_counter() - t0:.1f} s")
        repo = InvestigationRepo(store)
        records = repo.get(real["id"], with_records=True)["records"]
        result = dict(real["result"])
        windows = (MAX_PROBES - baseline) // window_size
        result["windows"] = [{**result["windows"][min(k, 2)], "window": k} for k in range(windows)]
        result["findings"] = [f for w in result["windows"] for f in w["findings"]]
        scaled = [{**records[k % len(records)], "id": f"p{k}"} for k in range(MAX_PROBES)]
        params = {**real["params"], "windows": windows, "total_probes": MAX_PROBES}
        progress = {**real["progress"], "done": MAX_PROBES, "total": MAX_PROBES}
        for _ in range(args.investigations - 1):
            copy = repo.create(real["url"], real["params"], "bench")
            repo.save(copy, state="done", progress=real["progress"], result=real["result"],
                      records=records)  # fmt: skip
        big = repo.create(real["url"], params, "bench")
        repo.save(big, state="done", progress=progress, result=result, records=scaled)
        print(
            f"{args.investigations} investigations stored; #{big}: {MAX_PROBES:,} records, "
            f"{windows} windows, {len(result['findings'])} findings"
        )
        app = create_app(settings, store)
        mount_ui(app)
        with TestClient(app) as client:
            client.get("/ui/")  # the local admin's session cookie
            paths = [
                "/ui/investigations",
                "/ui/live/investigations",
                f"/ui/investigations/{big}",
                f"/ui/live/investigations/{big}",
                f"/ui/investigations/{real['id']}",
                f"/v1/investigations/{big}",
                f"/v1/investigations/{big}?records=true",
                f"/v1/investigations/{big}/records?offset=45000",
                f"/v1/investigations/{big}/records?offset=45000&limit=5000",
            ]
            for path in paths:
                runs = [request(client, path) for _ in range(args.repeat)]
                print(page_line(path, [r[0] for r in runs], runs[-1][1], runs[-1][2]))
            # what ?records=true did before: every record read, parsed and answered
            whole = timed(
                lambda: JSONResponse(repo.get(big, with_records=True)), max(3, args.repeat // 3)
            )
            print(summary("all 50,000 records answered (before)", whole))
            page = timed(
                lambda: JSONResponse(repo.records_page(big, 45_000, 1_000).records), args.repeat
            )
            print(summary("a page of 1,000 answered (now)", page))
        store.close()
    served.http.shutdown()


def _asset_links(html: str) -> list[str]:
    import re

    return re.findall(r'(?:src|href)="(/ui/(?:static|vendor|assets)/[^"]+)"', html)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", nargs="?", choices=("pages", "fleet", "investigations"), default="pages"
    )
    parser.add_argument(
        "--investigations", type=int, default=100, help="investigations: how many to store"
    )
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--windows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--store",
        type=Path,
        help="pages: a demo simulation.db to copy instead of simulating the demo again "
        "(to compare two checkouts on the same store)",
    )
    parser.add_argument(
        "--after-window",
        type=int,
        default=5,
        help="pages: new windows per open incident, each followed by a view of its page",
    )
    parser.add_argument(
        "--warm-up",
        type=float,
        default=0.0,
        help="pages: seconds between the first views and the new windows",
    )
    parser.add_argument(
        "--settle", type=float, default=3.0, help="pages: seconds between a window and a view"
    )
    args = parser.parse_args()
    if args.what == "fleet":
        fleet_bench(args)
    elif args.what == "investigations":
        investigations_bench(args)
    else:
        pages_bench(args)


if __name__ == "__main__":
    main()
