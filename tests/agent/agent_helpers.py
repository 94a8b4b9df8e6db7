"""Helpers of the agent tests: a real scikit-learn model trained on the bundled electricity data,
real records, and a tiny local webhook receiver."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

from mlwarden.agent.remedies.retrain import dump_estimator
from mlwarden.domain import DeploymentState, FeatureSpec, ModelSpec, Task
from mlwarden.store.repository import Store

FEATURES = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
MODEL = "elec"
START = datetime(2026, 11, 1, tzinfo=UTC)


def train(frame: pd.DataFrame, **params: Any) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(max_depth=6, random_state=0, **params).fit(
        frame[FEATURES], frame["target"]
    )


def add_version(store: Store, estimator: Any, frame: pd.DataFrame, health: str) -> int:
    sample = frame.sample(min(300, len(frame)), random_state=0)[[*FEATURES, "target"]]
    info = store.add_version(
        MODEL,
        kind="sklearn",
        artifact=dump_estimator(estimator),
        training_metrics={"accuracy": float(estimator.score(frame[FEATURES], frame["target"]))},
        reference_sample=sample.to_dict(orient="records"),
    )
    store.set_version_health(MODEL, info.number, health)  # type: ignore[arg-type]
    return info.number


def send_records(
    store: Store,
    frame: pd.DataFrame,
    *,
    version: int,
    start: datetime = START,
    labels: bool = True,
    prefix: str = "r",
    predictions: np.ndarray | None = None,
    served_by: str | None = None,
) -> int:
    """Store ``frame``'s rows as prediction records of ``elec`` (and their labels)."""
    rows = []
    for i, (index, row) in enumerate(frame.iterrows()):
        features = {f: (None if pd.isna(row[f]) else float(row[f])) for f in FEATURES}
        rows.append(
            {
                "id": f"{prefix}{index}",
                "model": MODEL,
                "version": version,
                "timestamp": start + timedelta(minutes=30 * i),
                "features": features,
                "prediction": None if predictions is None else int(predictions[i]),
                "latency_ms": 5.0,
                **({"served_by": served_by} if served_by else {}),
            }
        )
    store.insert_records(rows)
    if labels:
        store.add_feedback(MODEL, [(f"{prefix}{i}", int(t)) for i, t in frame["target"].items()])
    return len(rows)


class Receiver:
    """A webhook receiver on 127.0.0.1 that fails the first ``fail`` requests with HTTP 503."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[tuple[bytes, dict[str, str]]] = []  # (body, headers) as received
        self.calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.calls += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.calls <= receiver.fail:
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(body))
                receiver.raw.append((body, dict(self.headers.items())))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def setup_deployed(store: Store, elec: pd.DataFrame) -> dict[str, Any]:
    """Model ``elec``: v1 (healthy, fallback) and v2 (healthy, live), both trained on old data."""
    spec = ModelSpec(
        name=MODEL,
        task=Task.CLASSIFICATION,
        features=[FeatureSpec(name=f) for f in FEATURES],
        target="target",
        positive_class=1,
    )
    store.create_model(spec)
    old = elec.iloc[:2000]
    v1 = add_version(store, train(old, min_samples_leaf=20), old, "healthy")
    v2 = add_version(store, train(old), old, "healthy")
    store.set_deployment(MODEL, DeploymentState(live_version=v1), actor="test", reason="first")
    store.set_deployment(
        MODEL, DeploymentState(live_version=v2, fallback_version=v1), actor="test", reason="v2"
    )
    return {"v1": v1, "v2": v2, "spec": spec}


def deploy_bad_version(store: Store, elec: pd.DataFrame, fallback: int) -> tuple[int, float]:
    """A release by ``ci`` of v3, trained on shuffled labels, with 600 of its real answers
    stored (labelled); returns its number and its accuracy on them."""
    old = elec.iloc[:2000]
    rng = np.random.default_rng(0)
    shuffled = old.assign(target=rng.permutation(old["target"].to_numpy()))
    v3 = add_version(store, train(shuffled), old, "unknown")
    store.set_deployment(
        MODEL,
        DeploymentState(live_version=v3, fallback_version=fallback),
        actor="ci",
        reason="deploy v3",
    )
    recent = elec.iloc[2000:2600]
    send_records(store, recent, version=v3)
    return v3, window_accuracy(store, recent)


class Script:
    """A window source that closes the windows a test appends, in order."""

    def __init__(self) -> None:
        self.windows: dict[str, list[Any]] = {}

    def add(
        self,
        model: str,
        findings: list[Any] | None = None,
        *,
        end: tuple[datetime, str] | None = None,
        **signals: float,
    ) -> int:
        """Append a window; ``end`` is the (received_at, id) of its last stored record, so the
        agent can read the window's records (no end: a window without stored records)."""
        from mlwarden.agent.monitor_source import ClosedWindow

        items = self.windows.setdefault(model, [])
        number = len(items) + 1
        items.append(
            ClosedWindow(
                window=number,
                ts=START + timedelta(hours=number),
                signals={"records": 100.0, **signals},
                findings=list(findings or []),
                end_received_at=None if end is None else end[0],
                end_record_id=None if end is None else end[1],
            )
        )
        return number

    def closed_windows(self, model: str, after: int | None) -> list[Any]:
        return [w for w in self.windows.get(model, []) if after is None or w.window > after]


def finding(
    kind: str, ratio: float = 4.0, features: list[str] | None = None, **evidence: Any
) -> Any:
    from mlwarden.domain import Finding

    return Finding(
        kind=kind,
        detector="test",
        features=features or [],
        statistic="s",
        score=ratio * 0.1,
        threshold=0.1,
        message=f"{kind} seen",
        evidence=evidence,
    )


def last_record_key(store: Store) -> tuple[datetime, str]:
    """The (received_at, id) of the newest stored record of ``elec``: a window's end key."""
    newest = store.records_by_arrival(MODEL, newest_first=True, limit=1)[0]
    return newest["received_at"], newest["id"]


def store_windows(store: Store, frames: list[pd.DataFrame], version: int) -> None:
    """Windows 0.. of ``elec``, one per frame, stored labelled with their ends."""
    from mlwarden.store.incidents import AgentRepo

    repo = AgentRepo(store)
    for number, frame in enumerate(frames):
        begin = START + timedelta(days=30 * number)  # 1,000 rows of 30 minutes: 21 days
        send_records(store, frame, version=version, prefix=f"w{number}-", start=begin)
        end = last_record_key(store)
        repo.save_window(
            MODEL, number, begin, {"records": float(len(frame))}, [],
            end_received_at=end[0], end_record_id=end[1],
        )  # fmt: skip


def window_accuracy(store: Store, frame: pd.DataFrame) -> float:
    """Accuracy of the live version on ``frame`` (the real model, the real records' features)."""
    from mlwarden.agent.remedies.retrain import load_estimator

    live = store.get_deployment(MODEL).live_version  # type: ignore[union-attr]
    estimator = load_estimator(store.load_artifact(MODEL, live))
    clean = frame.dropna()
    return float(np.mean(estimator.predict(clean[FEATURES]) == clean["target"]))


def persistent_windows(store: Store, kind: str, **evidence: Any) -> None:
    """Windows 1-3 of ``elec`` stored with a strong finding of ``kind``: the agent opens an
    incident and acts on its next pass."""
    from mlwarden.store.incidents import AgentRepo

    repo = AgentRepo(store)
    for number in range(1, 4):
        repo.save_window(MODEL, number, START, {"records": 100.0}, [finding(kind, 5, **evidence)])


def tagged_revisions(store: Store, action_id: int, step: str) -> int:
    """Deployment revisions of ``elec`` made by step ``step`` of action ``action_id``."""
    from mlwarden.agent.journal import marker

    tag = f"{marker(action_id)} {step}"
    return sum(1 for d in store.deployment_history(MODEL) if d.reason.startswith(tag))
