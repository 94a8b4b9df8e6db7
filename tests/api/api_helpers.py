"""Helpers of the API and gateway tests (imported by test modules and conftest)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from empty_sqlite import migrated_sqlite
from mlwarden.settings import Settings

ELEC_FEATURES = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
# one plausible instance of ``elec``
ELEC_ROW = {
    "period": 0.5,
    "nswprice": 0.06,
    "nswdemand": 0.4,
    "vicprice": 0.003,
    "vicdemand": 0.4,
    "transfer": 0.4,
}
ELEC_SPEC = {
    "name": "elec",
    "task": "classification",
    "target": "target",
    "positive_class": 1,
    "features": [{"name": n, "type": "numeric", "nullable": False} for n in ELEC_FEATURES],
}


def make_settings(tmp_path: Path, database_url: str | None = None, **extra: Any) -> Settings:
    """Settings of an app in ``tmp_path/data``; without ``database_url``, its SQLite file there
    starts as a copy of a migrated empty one (``empty_sqlite``) unless it exists already."""
    extra.setdefault("write_flush_interval_s", 0.05)
    data_dir = tmp_path / "data"
    if database_url is None and not (data_dir / "mlwarden.db").exists():
        migrated_sqlite(data_dir / "mlwarden.db")
    return Settings(data_dir=data_dir, database_url=database_url, **extra)


def role_headers(settings: Settings) -> dict[str, dict[str, str]]:
    """Bearer headers of a viewer, an operator and the bootstrap admin of ``settings`` (set
    here), for an app made from ``settings`` with auth on."""
    from mlwarden.store import Store

    with Store(settings.resolved_database_url) as store:
        tokens = {role: store.create_token(f"{role}-t", role) for role in ("viewer", "operator")}
    settings.bootstrap_admin_token = tokens["admin"] = "mlw_bootstrap-admin-secret"
    return {role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()}


def state_of(client: TestClient) -> Any:
    return client.app.state.mlwarden  # type: ignore[attr-defined]


def flush(client: TestClient) -> None:
    """Wait until every record the app queued is in the database."""
    assert state_of(client).writer.flush(timeout=30)


def deploy_elec(client: httpx.Client, artifacts: dict[str, bytes], **deployment: Any) -> None:
    """Register ``elec``, upload both versions, and deploy (v1 live by default)."""
    assert client.post("/v1/models", json=ELEC_SPEC).status_code == 201
    for key in ("v1", "v2"):
        response = client.post(
            "/v1/models/elec/versions",
            files={"file": (f"{key}.skops", artifacts[key], "application/octet-stream")},
            data={"metrics": json.dumps({"accuracy": 0.7})},
        )
        assert response.status_code == 201, response.text
    body = {"live_version": 1, "reason": "first deploy", **deployment}
    response = client.put("/v1/models/elec/deployment", json=body)
    assert response.status_code == 200, response.text


class RemoteModel:
    """A tiny HTTP model server: behaviour by path, every request counted.

    - ``/ok``: generic JSON, predicts 1 with probability 0.8
    - ``/fail``: HTTP 500
    - ``/hold``: waits until :attr:`release` is set (at most 10 s), then answers like ``/ok``
    - ``/v2/models/<name>/infer``: KServe v2 with a ``predict`` and a ``predict_proba`` output
    """

    def __init__(self) -> None:
        self.release = threading.Event()
        self.requests: list[tuple[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # the request headers, in arrival order
        self.answered: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                owner.requests.append((self.path, body))
                owner.headers.append(dict(self.headers))
                if self.path.startswith("/fail"):
                    self._send(500, {"error": "model crashed"})
                    return
                if self.path.startswith("/hold"):
                    owner.release.wait(10)
                if "/v2/models/" in self.path:
                    n = body["inputs"][0]["shape"][0]
                    self._send(
                        200,
                        {
                            "outputs": [
                                {
                                    "name": "predict",
                                    "shape": [n],
                                    "datatype": "INT64",
                                    "data": [1] * n,
                                },
                                {
                                    "name": "predict_proba",
                                    "shape": [n, 2],
                                    "datatype": "FP64",
                                    "data": [0.3, 0.7] * n,
                                },
                            ]
                        },
                    )
                else:
                    n = len(body["instances"])
                    predictions = [{"prediction": 1, "probabilities": {"0": 0.2, "1": 0.8}}] * n
                    self._send(200, {"predictions": predictions})
                owner.answered.append(self.path)

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll ``condition`` until it holds (background work in tests), bounded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@dataclass
class Load:
    """Threads sending single ``elec`` predictions until stopped (or the server is gone),
    keeping every answer's record id and every failure."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    answered: list[tuple[float, str]] = field(default_factory=list)  # (when, record id)
    failed: list[tuple[float, int, str]] = field(default_factory=list)  # (when, status, body)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, workers: int) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._send) for _ in range(workers)]
        for thread in threads:
            thread.start()
        return threads

    def _send(self) -> None:
        row = {"instances": {n: 1.0 for n in ELEC_FEATURES}}
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    response = client.post("/v1/models/elec/predict", json=row)
                except httpx.HTTPError as exc:  # the server was killed
                    self.failed.append((time.monotonic(), 0, repr(exc)))
                    return
                if response.status_code == 200:
                    self.answered.append((time.monotonic(), response.json()["id"]))
                else:
                    self.failed.append((time.monotonic(), response.status_code, response.text))
