"""Probing: watch a model you only know by its URL.

A :class:`Prober` sends the rows of a remote version's reference sample to its endpoint at a set
rate (cycling through them), and records each call like a served prediction: latency, output
and error, ``served_by="live"``. The monitor then sees that model like any other.

>>> import threading
>>> stop = threading.Event()
>>> stop.set()  # a prober told to stop sends nothing
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlwarden.domain import ModelSpec
from mlwarden.errors import Conflict, InvalidInput, MlwardenError, NotFound
from mlwarden.serving.gateway import RecordSink, new_record_id
from mlwarden.serving.metrics import ServerMetrics
from mlwarden.serving.predictors import RemotePredictor
from mlwarden.settings import Settings

__all__ = ["ProbeManager", "ProbeStatus", "Prober"]


@dataclass
class ProbeStatus:
    """What a prober has done so far."""

    model: str
    version: int
    rate_per_s: float
    sent: int = 0
    errors: int = 0
    running: bool = True
    last_error: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "rate_per_s": self.rate_per_s,
            "sent": self.sent,
            "errors": self.errors,
            "running": self.running,
            "last_error": self.last_error,
            "started_at": self.started_at.isoformat(),
        }


class Prober:
    """Send reference rows to a remote version at ``rate_per_s`` from a background thread.

    ``max_requests`` bounds the run (None: until :meth:`stop`). Each call is one record.
    """

    def __init__(
        self,
        spec: ModelSpec,
        version: int,
        predictor: RemotePredictor,
        rows: Sequence[Mapping[str, Any]],
        sink: RecordSink,
        *,
        rate_per_s: float = 1.0,
        max_requests: int | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        if not rows:
            raise InvalidInput(f"version {version} of {spec.name!r} has no reference rows to send")
        if not 0 < rate_per_s <= 1000:
            raise InvalidInput(f"rate_per_s must be in (0, 1000], got {rate_per_s}")
        names = spec.feature_names
        self.rows = [{name: row.get(name) for name in names} for row in rows]
        self.spec = spec
        self.version = version
        self.predictor = predictor
        self.sink = sink
        self.max_requests = max_requests
        self.metrics = metrics
        self.status = ProbeStatus(spec.name, version, rate_per_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"mlw-probe-{spec.name}", daemon=True
        )

    def start(self) -> Prober:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.status.running = False

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the prober has finished (``max_requests`` reached or stopped)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def probe_once(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Send one row and return its record (also submitted to the sink)."""
        start = time.perf_counter()
        prediction = None
        error = None
        try:
            prediction = self.predictor.predict([row])[0]
        except MlwardenError as exc:
            error = exc.message
        except Exception as exc:  # a broken endpoint must not kill the prober
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = (time.perf_counter() - start) * 1000.0
        record = {
            "id": new_record_id(),
            "model": self.spec.name,
            "version": self.version,
            "timestamp": datetime.now(UTC),
            "features": dict(row),
            "prediction": None if prediction is None else prediction.prediction,
            "scores": None if prediction is None else prediction.scores,
            "latency_ms": latency_ms,
            "error": error,
            "served_by": "live",
        }
        self.status.sent += 1
        if error is not None:
            self.status.errors += 1
            self.status.last_error = error
        if self.metrics is not None:
            self.metrics.predictions.labels(self.spec.name, str(self.version), "live").inc()
            self.metrics.latency.labels(self.spec.name, "live").observe(latency_ms / 1000.0)
            if error is not None:
                self.metrics.prediction_errors.labels(
                    self.spec.name, str(self.version), "live"
                ).inc()
        self.sink.submit([record])
        return record

    def _run(self) -> None:
        interval = 1.0 / self.status.rate_per_s
        next_at = time.monotonic()
        index = 0
        try:
            while not self._stop.is_set():
                if self.max_requests is not None and self.status.sent >= self.max_requests:
                    break
                self.probe_once(self.rows[index % len(self.rows)])
                index += 1
                next_at += interval
                # a slow endpoint does not build a backlog: skip missed ticks
                next_at = max(next_at, time.monotonic())
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            self.status.running = False
            self.predictor.close()


class ProbeManager:
    """The probers of one server, at most one per model."""

    def __init__(
        self,
        store: Any,
        sink: RecordSink,
        settings: Settings | None = None,
        *,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.store = store
        self.sink = sink
        self.settings = settings or Settings()
        self.metrics = metrics
        self._probers: dict[str, Prober] = {}
        self._lock = threading.Lock()

    def start(
        self,
        model: str,
        *,
        version: int | None = None,
        rate_per_s: float = 1.0,
        max_requests: int | None = None,
    ) -> ProbeStatus:
        """Start probing ``model`` (its live version unless ``version`` is given)."""
        spec = self.store.get_model(model)
        if version is None:
            deployment = self.store.get_deployment(model)
            if deployment is None or deployment.live_version is None:
                raise Conflict(f"model {model!r} has no live version; name the version to probe")
            version = deployment.live_version
        info = self.store.get_version(model, version)
        if info.kind != "remote":
            raise InvalidInput(
                f"version {version} of {model!r} is a {info.kind} version; only remote "
                "endpoints are probed (the gateway already records local ones)"
            )
        rows = self.store.reference_sample(model, version) or []
        timeout_s = (info.timeout_ms or self.settings.predict_timeout_ms) / 1000.0
        predictor = RemotePredictor(info.endpoint or {}, spec, timeout_s=timeout_s)
        prober = Prober(
            spec,
            version,
            predictor,
            rows,
            self.sink,
            rate_per_s=rate_per_s,
            max_requests=max_requests,
            metrics=self.metrics,
        )
        with self._lock:
            running = self._probers.get(model)
            if running is not None and running.status.running:
                raise Conflict(f"model {model!r} is already being probed; stop it first")
            self._probers[model] = prober.start()
        return prober.status

    def stop(self, model: str) -> ProbeStatus:
        with self._lock:
            prober = self._probers.get(model)
        if prober is None:
            raise NotFound(f"model {model!r} is not being probed", model=model)
        prober.stop()
        return prober.status

    def status(self, model: str) -> ProbeStatus:
        prober = self._probers.get(model)
        if prober is None:
            raise NotFound(f"model {model!r} has never been probed here", model=model)
        return prober.status

    def get(self, model: str) -> Prober | None:
        return self._probers.get(model)

    def stop_all(self) -> None:
        with self._lock:
            probers = list(self._probers.values())
        for prober in probers:
            prober.stop()
