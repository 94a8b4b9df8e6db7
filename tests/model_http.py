"""A real scikit-learn model behind a real HTTP server, whose behaviour a test changes mid-run:
what ``mlwarden investigate`` is tested against (tests/serving/test_investigate.py and
tests/api/test_api_investigations.py).

The model is a logistic regression fitted on four classes of synthetic data; it answers the
generic JSON protocol (``{"instances": [...]}`` -> ``{"predictions": [{"prediction",
"probabilities"}]}``). ``degrade_after(n, mode)`` switches it after its ``n``-th call:

- ``collapse``: the probabilities are flattened towards uniform (confidence 0.6-0.95 falls to
  0.25-0.35, the classes it picks unchanged): the failure probe mode once missed;
- ``slow``: each answer waits ``slow_ms`` first;
- ``errors``: every other call answers HTTP 500; ``fail``: every call does;
- ``garbage``: ``text/html`` instead of JSON;
- ``shape``: one object ``{"prediction", "confidence"}`` per call (the shape of the issue's
  own example endpoint), ``nested``: ``{"result": {"cls", "conf"}}``, which only a response
  field mapping reads.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from mlwarden.domain import FeatureSpec, ModelSpec, Task
from mlwarden.serving.predictors import LocalPredictor

FEATURES = [f"x{i}" for i in range(5)]


def _data() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(  # type: ignore[no-any-return]
        n_samples=2_400,
        n_features=5,
        n_informative=4,
        n_redundant=0,
        n_classes=4,
        n_clusters_per_class=1,
        class_sep=2.5,
        random_state=0,
    )


def training_data() -> tuple[np.ndarray, np.ndarray]:
    X, y = _data()
    return X[:2_000], y[:2_000]


def sample_rows(n: int = 300) -> list[dict[str, Any]]:
    """Rows of the same distribution the model was not trained on, their class as ``label``."""
    X, y = _data()
    X, y = X[2_000 : 2_000 + n], y[2_000 : 2_000 + n]
    return [
        {**{name: float(v) for name, v in zip(FEATURES, row, strict=True)}, "label": int(t)}
        for row, t in zip(X, y, strict=True)
    ]


def probe_policy(folder: Path) -> Path:
    """A policy file for investigations in tests: the probes share a loaded host, so latency
    is not judged (these tests are about the model's answers)."""
    policy = folder / "policy.yaml"
    policy.write_text("version: 1\ndefaults:\n  detection:\n    latency_ratio: 1000\n")
    return policy


def until(check: Callable[[], Any], timeout: float = 120.0) -> Any:
    """The first true value ``check`` returns, polled every 50 ms; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


class ModelServer:
    """The model served on ``url`` from a daemon thread until :meth:`close`."""

    def __init__(self, *, slow_ms: float = 300.0, base_ms: float = 10.0) -> None:
        X, y = training_data()
        spec = ModelSpec(
            name="probed",
            task=Task.CLASSIFICATION,
            features=[FeatureSpec(name=n) for n in FEATURES],
        )
        self.predictor = LocalPredictor(LogisticRegression(max_iter=1000).fit(X, y), spec)
        self.calls = 0
        self.mode = "healthy"
        self.after: int | None = None
        self.slow_ms = slow_ms
        self.base_ms = base_ms
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, answer, kind = owner.answer(body.get("instances") or [])
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/predict"

    def degrade_after(self, calls: int, mode: str) -> None:
        self.after, self.mode = calls, mode

    def answer(self, instances: list[dict[str, Any]]) -> tuple[int, Any, str]:
        with self._lock:
            self.calls += 1
            call = self.calls
        degraded = self.after is not None and call > self.after
        mode = self.mode if degraded else "healthy"
        if self.base_ms:
            time.sleep(self.base_ms / 1000)
        if mode == "slow":
            time.sleep(self.slow_ms / 1000)
        if (mode == "errors" and call % 2 == 0) or mode == "fail":
            return 500, {"error": "CUDA out of memory"}, "application/json"
        if mode == "garbage":
            return 200, b"<html>maintenance</html>", "text/html"
        items = []
        for answer in self.predictor.predict(instances):
            probabilities = dict(answer.probabilities or {})
            if mode == "collapse":
                probabilities = {k: 0.2 * p + 0.2 for k, p in probabilities.items()}
            items.append({"prediction": answer.prediction, "probabilities": probabilities})
        if mode in ("shape", "nested"):
            first = items[0]
            top = max(first["probabilities"].values())
            if mode == "shape":
                return (
                    200,
                    {"prediction": first["prediction"], "confidence": top},
                    "application/json",
                )
            return 200, {"result": {"cls": first["prediction"], "conf": top}}, "application/json"
        return 200, {"predictions": items}, "application/json"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
