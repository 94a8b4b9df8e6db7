"""The demo's faulty model server: the champion behind HTTP, answering as the scenario's serving
faults say.

In production a model that fails, freezes or slows down is a model server doing so; the
gateway calls it, falls back, times out and records what it saw. So the demo serves its
champion from this small server (the generic JSON protocol of
:class:`~mlwarden.serving.predictors.RemotePredictor`) and deploys it as a remote version: the
faults' ``serve`` hooks decide its answers (or a 500 for a failed call) and their
``added_latency_ms`` how long it sleeps first, at the stream position the demo is sending. A
fallback or a rollback to the champion's own artifact escapes the faults, as in the simulator.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlwarden.scenarios.faults.base import Effect, InjectedFault, Serving
from mlwarden.serving.predictors import Prediction, PredictionError, Predictor

SERVING_EFFECTS = frozenset({Effect.ANSWERS, Effect.LATENCY})


class FaultyModelServer:
    """``predictor`` served on ``url`` (loopback) from a daemon thread, with ``faults`` applied
    at the stream position ``position()`` returns."""

    def __init__(
        self,
        predictor: Predictor,
        faults: Sequence[InjectedFault],
        serving: Serving,
        position: Callable[[], int],
        *,
        seed: int = 0,
    ) -> None:
        self.predictor = predictor
        self.faults = [f for f in faults if f.effects & SERVING_EFFECTS]
        self.serving = serving
        self.position = position
        self.rng = random.Random(seed)
        self.calls = 0
        self.failed = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, answer = server.answer(body.get("instances") or [])
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:  # no access log on the console
                return

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="mlw-demo-model", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultyModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def answer(self, instances: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        """The HTTP status and body for one call with ``instances``."""
        self.calls += 1
        position = self.position()
        active = [f for f in self.faults if f.active(position)]
        delay_ms = sum(f.added_latency_ms(self.rng) for f in active)
        if delay_ms:
            time.sleep(delay_ms / 1000)
        try:
            answers = self._serve(position, instances, active)
        except PredictionError as exc:
            self.failed += 1
            return 500, {"error": exc.message}
        return 200, {"predictions": [_item(a) for a in answers]}

    def _serve(
        self, position: int, instances: list[dict[str, Any]], active: list[InjectedFault]
    ) -> list[Prediction]:
        for fault in active:
            served = fault.serve(position, lambda: self.predictor.predict(instances), self.serving)
            if served is not None:
                return served
        return self.predictor.predict(instances)


def _item(answer: Prediction) -> dict[str, Any]:
    item: dict[str, Any] = {"prediction": answer.prediction}
    if answer.probabilities is not None:
        item["probabilities"] = answer.probabilities
    elif answer.score is not None:
        item["score"] = answer.score
    return item
