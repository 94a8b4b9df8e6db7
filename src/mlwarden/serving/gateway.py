"""The serving gateway: route each prediction to the right version and record it.

Per request the gateway does no database work: the model's spec, its deployment and the loaded
versions are cached in memory, and the deployment is re-read at most every ``refresh_s``
seconds, in the background (requests meanwhile are served with the deployment in force), or at
once after :meth:`Gateway.invalidate`, which the API calls on every change it makes, and the
server on every change notification of another replica: then ``refresh_s`` is only a safety
net. While the database is unreachable the last deployment read stays in force,
so serving goes on. A deployment seen for the first time has its versions loaded in the
background at once (and :meth:`Gateway.start_warming` does it for every deployed model when the
server starts), so the first request does not wait seconds for an artifact to load. Routing:

- the **live** version answers; a **canary** takes a share of requests equal to its weight,
  sticky by the request key when one is given (same key, same version);
- a **shadow** version gets a copy in the background; its answer is recorded, never returned,
  and the caller never waits for it;
- a version that fails or exceeds its timeout (the version's ``timeout_ms`` or the
  ``predict_timeout_ms`` setting) hands over to the **fallback** version, and the answer says
  ``served_by: "fallback"`` with the reason;
- a **disabled** model answers 503, or its configured default response.

Every attempt (answers, failures, shadow copies, defaults) becomes a record for the writer;
with the ``durable_capture`` setting an answer waits until its records are on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import threading
import time
import zlib
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Protocol

from mlwarden.capture.validation import (
    FieldError,
    SchemaValidator,
    check_batch,
    invalid_input,
    printable,
)
from mlwarden.domain import Deployment, ModelSpec
from mlwarden.errors import InvalidInput, MlwardenError, ServiceUnavailable
from mlwarden.serving.explain import Method, explain
from mlwarden.serving.metrics import ServerMetrics
from mlwarden.serving.predictors import (
    LocalPredictor,
    Prediction,
    PredictionError,
    Predictor,
    RemotePredictor,
)
from mlwarden.serving.repair import repair_instances
from mlwarden.settings import Settings
from mlwarden.store.writer import is_unreachable

__all__ = ["Gateway", "RecordSink", "canary_share", "new_record_id"]

log = logging.getLogger(__name__)

# the keys of a refused row kept in its error record (a schema has far fewer features)
REFUSED_KEYS_KEPT = 256


class RecordSink(Protocol):
    """Where records go: the store's batched writer (or anything with ``submit``)."""

    def submit(self, records: Iterable[Mapping[str, Any]]) -> Future[None] | None:
        """Take the records; a future when they are being made durable (awaited)."""
        ...


class VersionStore(Protocol):
    """What the gateway reads from the store (``mlwarden.store.Store`` satisfies it)."""

    def model_names(self) -> list[str]: ...
    def get_model(self, name: str) -> ModelSpec: ...
    def get_deployment(self, model: str, environment: str = ...) -> Deployment | None: ...
    def get_version(self, model: str, number: int) -> Any: ...
    def load_artifact(self, model: str, number: int) -> bytes: ...


# the bits uuid4 fixes: version 4 (bits 76-79) and the RFC 4122 variant (bits 62-63)
_UUID4_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID4_SET = (0x4 << 76) | (0x2 << 62)


def new_record_id() -> str:
    """A fresh record id: a random uuid4, in hex.

    The same value as ``uuid.uuid4().hex`` without building the ``UUID`` object, which cost
    several times the 16 random bytes on the gateway's hot path.

    >>> import uuid
    >>> uuid.UUID(new_record_id()).version
    4
    """
    number = (int.from_bytes(os.urandom(16)) & _UUID4_CLEAR) | _UUID4_SET
    return f"{number:032x}"


def canary_share(key: str) -> float:
    """A stable number in [0, 1) for a request key: the same key always lands the same side.

    >>> canary_share("user-42") == canary_share("user-42")
    True
    >>> 0.0 <= canary_share("anything") < 1.0
    True
    """
    return zlib.crc32(key.encode()) / 4294967296.0


# A local call whose typical duration is below this runs on the event loop itself: a thread
# hop costs more than the call, and a call that short cannot meaningfully time out.
INLINE_BUDGET_S = 0.002


@dataclass
class _Loaded:
    predictor: Predictor
    timeout_s: float
    typical_s: float | None = None  # moving average of the per-row call time (local only)

    def inline(self, rows: int) -> bool:
        return self.typical_s is not None and self.typical_s * rows < INLINE_BUDGET_S

    def timed_predict(
        self, instances: Sequence[Mapping[str, Any]], clock: Callable[[], float] = time.perf_counter
    ) -> list[Prediction]:
        """Call the model, timing the call itself with ``clock``.

        On the event loop the wall time (``perf_counter``) is the call's; in a worker thread
        the caller passes ``time.thread_time``, the thread's CPU time: the wall time there
        includes the waits for the GIL while the event loop runs, so a 0.1 ms call read as
        milliseconds, kept the model off the loop, and every call then paid the thread hops
        (the gateway's p99 at concurrency 32 grew tenfold when that happened).
        """
        start = clock()
        predictions = self.predictor.predict(instances)
        per_row = (clock() - start) / max(len(instances), 1)
        typical = self.typical_s
        # clipped, so calls stalled by a busy machine (the thread preempted in mid-call) do not
        # push the model off the loop: one call moves the average by at most a fifth (three
        # stalls in a row sent a 0.15 ms model to the threads before), while a model that has
        # really become slower still crosses the budget within a few dozen calls
        per_row = min(per_row, 4 * INLINE_BUDGET_S)
        if typical is None:
            self.typical_s = per_row
        else:
            self.typical_s = 0.9 * typical + 0.1 * min(per_row, max(3 * typical, 5e-5))
        return predictions


@dataclass(frozen=True, slots=True)
class _Series:
    """The counter and histogram child of one model, version and role."""

    predictions: Any
    latency: Any


@dataclass
class _Route:
    spec: ModelSpec
    validator: SchemaValidator
    deployment: Deployment | None
    checked_at: float
    versions: dict[int, _Loaded] = field(default_factory=dict)


class Gateway:
    """Routes predictions of every model and records each attempt.

    ``await gateway.predict("titanic", [{"Age": 22, ...}], key="user-1")`` returns a list of
    per-instance answers (record id, version, served_by, prediction, probabilities or score).
    Errors: :class:`~mlwarden.errors.NotFound` for an unknown model, ``InvalidInput`` for bad
    instances, ``ServiceUnavailable`` when disabled or no version can answer.
    """

    # how often a deployment is read again when no change notification tells of changes
    POLL_S = 1.0

    def __init__(
        self,
        store: VersionStore,
        sink: RecordSink,
        settings: Settings | None = None,
        *,
        metrics: ServerMetrics | None = None,
        refresh_s: float = POLL_S,
        predict_workers: int = 4,
        shadow_workers: int = 1,
        shadow_queue_limit: int = 256,
        environment: str = "production",
    ) -> None:
        self.store = store
        self.sink = sink
        self.settings = settings or Settings()
        self.metrics = metrics or ServerMetrics()
        self.refresh_s = refresh_s
        self.environment = environment
        self._routes: dict[str, _Route] = {}
        # bumped by every invalidation: a read that began before one is not trusted after it
        self._generation = 0
        self._route_locks: dict[str, asyncio.Lock] = {}
        self._refreshing: set[str] = set()  # models whose route is being read again
        self._load_lock = threading.Lock()
        self._predict_pool = ThreadPoolExecutor(predict_workers, thread_name_prefix="mlw-predict")
        self._shadow_pool = ThreadPoolExecutor(shadow_workers, thread_name_prefix="mlw-shadow")
        self._shadow_pending = 0
        self._shadow_limit = shadow_queue_limit
        self._shadow_tasks: set[asyncio.Task[Any]] = set()
        self._warming: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None  # the one serving requests
        self._random = random.Random()
        self._metric_series: dict[tuple[str, int | None, str], _Series] = {}

    # ------------------------------------------------------------------------ cache

    def invalidate(self, model: str | None = None) -> None:
        """Forget the cached route of ``model`` (of every model when None), and read it again
        in the background, loading the versions a new deployment routes to."""
        self._generation += 1
        if model is None:
            self._routes.clear()
        else:
            self._routes.pop(model, None)
        self._warm_soon(None if model is None else [model])

    def loaded_versions(self, model: str) -> list[int]:
        """The versions of ``model`` loaded in memory now (what the next request finds ready)."""
        route = self._routes.get(model)
        return sorted(route.versions) if route is not None else []

    def _load_route(self, model: str, previous: _Route | None) -> _Route:
        spec = self.store.get_model(model)
        deployment = self.store.get_deployment(model, self.environment)
        if previous is not None and previous.spec == spec:
            validator = previous.validator
            versions = previous.versions  # versions never change once stored
        else:
            validator = SchemaValidator(spec)
            versions = {}
        return _Route(spec, validator, deployment, time.monotonic(), versions)

    async def _route(self, model: str) -> _Route:
        route = self._routes.get(model)
        if route is not None and time.monotonic() - route.checked_at < self.refresh_s:
            return route
        if route is not None and self.refresh_s > 0:
            # a periodic re-read: this request is served with the route in force while one
            # background read refreshes it. Awaited here, every request arriving during the
            # read (a database round trip through a worker thread, slow on a busy machine)
            # waited for it, once a second: most of the gateway's p99 at concurrency 32.
            if model not in self._refreshing:
                self._refreshing.add(model)
                self._background(self._refresh(model, route))
            return route
        return await self._reload(model)

    async def _refresh(self, model: str, stale: _Route) -> None:
        try:
            await self._reload(model)
        except Exception as exc:
            # e.g. the model was deleted: the next request reads it again and says why
            log.warning("could not read the deployment of %s again: %s", model, exc)
            if self._routes.get(model) is stale:
                self._routes.pop(model, None)
        finally:
            self._refreshing.discard(model)

    async def _reload(self, model: str) -> _Route:
        """Read ``model``'s spec and deployment again (once, however many ask at a time)."""
        self._loop = asyncio.get_running_loop()
        lock = self._route_locks.setdefault(model, asyncio.Lock())
        async with lock:
            route = self._routes.get(model)
            if route is not None and time.monotonic() - route.checked_at < self.refresh_s:
                return route
            generation = self._generation
            try:
                fresh = await asyncio.to_thread(self._load_route, model, route)
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                if route is None:
                    raise ServiceUnavailable(
                        f"model {model!r} cannot be routed: the database is unreachable and "
                        "this server has not served the model yet; retry later",
                        model=model,
                    ) from None
                # keep serving the last deployment read; ask the database again in refresh_s
                log.warning("database unreachable; %s keeps its last known deployment", model)
                route.checked_at = time.monotonic()
                return route
            if generation != self._generation:
                # changed while it was read (another thread invalidated it): serve this request
                # with it, and read it again for the next one
                fresh.checked_at = -math.inf
            self._routes[model] = fresh
            if route is None or fresh.deployment != route.deployment:
                self._background(self._warm_route(fresh))
            return fresh

    def _load_version(self, route: _Route, number: int) -> _Loaded:
        with self._load_lock:
            loaded = route.versions.get(number)
            if loaded is not None:
                return loaded
            info = self.store.get_version(route.spec.name, number)
            timeout_ms = info.timeout_ms or self.settings.predict_timeout_ms
            timeout_s = float(timeout_ms) / 1000.0
            predictor: Predictor
            if info.kind == "remote":
                predictor = RemotePredictor(info.endpoint or {}, route.spec, timeout_s=timeout_s)
            else:
                artifact = self.store.load_artifact(route.spec.name, number)
                predictor = LocalPredictor.from_artifact(artifact, route.spec)
            loaded = _Loaded(predictor, timeout_s)
            route.versions[number] = loaded
            return loaded

    async def _version(self, route: _Route, number: int) -> _Loaded:
        loaded = route.versions.get(number)
        if loaded is None:
            loaded = await asyncio.to_thread(self._load_version, route, number)
        return loaded

    async def warm(self, model: str) -> None:
        """Load the model's routed versions now instead of on the first request."""
        await self._warm_route(await self._route(model))

    async def _warm_route(self, route: _Route) -> None:
        deployment = route.deployment
        if deployment is None:
            return
        for number in (
            deployment.live_version,
            deployment.fallback_version,
            deployment.canary_version,
            deployment.shadow_version,
        ):
            if number is None or number in route.versions:
                continue
            try:
                await self._version(route, number)
            except Exception as exc:  # the request that needs it reports the failure
                log.warning("could not load version %s of %s: %s", number, route.spec.name, exc)

    async def explain(
        self,
        model: str,
        instance: Mapping[str, Any],
        reference_rows: Sequence[Mapping[str, Any]],
        version: int | None = None,
        method: Method = "auto",
    ) -> dict[str, Any]:
        """Each feature's contribution to ``version``'s answer (the live version's by default)
        for ``instance``, against the reference point of ``reference_rows``
        (:mod:`mlwarden.serving.explain`). The instance is mended and validated as a
        prediction is; nothing is recorded: the model answers mixes of it and the reference."""
        route = await self._route(model)
        deployment = route.deployment
        inputs: Sequence[Mapping[str, Any]] = [instance]
        if deployment is not None and deployment.input_repair:
            inputs = repair_instances(inputs, deployment.input_repair)
        check_batch(route.validator, inputs)
        number = version
        if number is None and deployment is not None:
            number = deployment.live_version
        if number is None:
            raise ServiceUnavailable(
                f"model {model!r} has no live version; name a version to explain", model=model
            )
        loaded = await self._version(route, number)
        explanation = await asyncio.to_thread(
            explain, loaded.predictor, route.spec, inputs[0], reference_rows, method
        )
        return {"model": model, "version": number, **explanation.as_dict()}

    def start_warming(self) -> None:
        """Read every model's deployment and load its versions, in the background (at start)."""
        self._loop = asyncio.get_running_loop()
        self._background(self._warm_models(None))

    def _warm_soon(self, names: list[str] | None) -> None:
        """Warm ``names`` on the serving loop; callable from any thread (route handlers run
        registry changes in worker threads)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # nothing served yet: the first request reads the deployment
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._background(self._warm_models(names))
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(lambda: self._background(self._warm_models(names)))

    async def _warm_models(self, names: list[str] | None) -> None:
        """Warm ``names`` (every model when None); failures are left to the requests."""
        if names is None:
            try:
                names = await asyncio.to_thread(self.store.model_names)
            except Exception as exc:
                log.warning("could not list the models to load ahead of requests: %s", exc)
                return
        for name in names:
            try:
                await self.warm(name)
            except Exception as exc:
                log.warning("could not load the versions of %s ahead of requests: %s", name, exc)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def _record(self, records: list[dict[str, Any]]) -> None:
        """Hand records to the sink; in durable mode, wait until they are on disk."""
        durable = self.sink.submit(records)
        if durable is not None:
            await asyncio.wrap_future(durable)

    # ------------------------------------------------------------------------ calls

    async def _call(
        self, loaded: _Loaded, instances: Sequence[Mapping[str, Any]]
    ) -> list[Prediction]:
        predictor = loaded.predictor
        if isinstance(predictor, RemotePredictor):
            # httpx enforces the timeout itself; wait_for is a guard against a stuck body
            return await asyncio.wait_for(predictor.apredict(instances), loaded.timeout_s + 1.0)
        if loaded.inline(len(instances)):
            return loaded.timed_predict(instances)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._predict_pool, loaded.timed_predict, instances, time.thread_time
        )
        try:
            return await asyncio.wait_for(future, loaded.timeout_s)
        except TimeoutError:
            raise PredictionError(
                f"the model did not answer within {loaded.timeout_s * 1000:.0f} ms"
            ) from None

    def _records(
        self,
        model: str,
        version: int | None,
        served_by: str,
        instances: Sequence[Mapping[str, Any]],
        predictions: Sequence[Prediction] | None,
        latency_ms: float,
        error: str | None,
        now: datetime,
    ) -> list[dict[str, Any]]:
        out = []
        for i, features in enumerate(instances):
            prediction = predictions[i] if predictions is not None else None
            out.append(
                {
                    "id": new_record_id(),
                    "model": model,
                    "version": version,
                    "timestamp": now,
                    "features": features,
                    "prediction": None if prediction is None else prediction.prediction,
                    "scores": None if prediction is None else prediction.scores,
                    "latency_ms": latency_ms,
                    "error": error,
                    "served_by": served_by,
                }
            )
        return out

    def _series(self, model: str, version: int | None, served_by: str) -> _Series:
        """The metric series of one model, version and role, looked up once: prometheus_client's
        ``labels`` builds and hashes its key on every call, twice per prediction."""
        key = (model, version, served_by)
        series = self._metric_series.get(key)
        if series is None:
            metrics = self.metrics
            series = self._metric_series[key] = _Series(
                metrics.predictions.labels(model, str(version), served_by),
                metrics.latency.labels(model, served_by),
            )
        return series

    def _count(self, model: str, version: int | None, served_by: str, n: int) -> None:
        self._series(model, version, served_by).predictions.inc(n)

    async def _attempt(
        self,
        route: _Route,
        number: int,
        served_by: str,
        instances: Sequence[Mapping[str, Any]],
        recorded: Sequence[Mapping[str, Any]] | None = None,
    ) -> tuple[list[dict[str, Any]], list[Prediction] | None, str | None]:
        """Call one version with ``instances``; returns its records (of ``recorded``, the
        requests as sent, when given), predictions (None on failure) and error."""
        model = route.spec.name
        start = time.perf_counter()
        error: str | None = None
        predictions: list[Prediction] | None = None
        try:
            loaded = await self._version(route, number)
            predictions = await self._call(loaded, instances)
        except InvalidInput:
            raise
        except MlwardenError as exc:
            error = exc.message
        except TimeoutError:
            error = "the remote model did not answer in time"
        except Exception as exc:  # a broken version must never take the gateway down
            log.exception("version %s of %s failed", number, model)
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = (time.perf_counter() - start) * 1000.0
        series = self._series(model, number, served_by)
        series.latency.observe(latency_ms / 1000.0)
        series.predictions.inc(len(instances))
        if error is not None:
            self.metrics.prediction_errors.labels(model, str(number), served_by).inc(len(instances))
        records = self._records(
            model,
            number,
            served_by,
            instances if recorded is None else recorded,
            predictions,
            latency_ms,
            error,
            datetime.now(UTC),
        )
        return records, predictions, error

    # ------------------------------------------------------------------------ predict

    async def predict(
        self,
        model: str,
        instances: Sequence[Mapping[str, Any]],
        key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Answer ``instances`` of ``model``; one dict per instance, in order."""
        if not instances:
            raise InvalidInput("no instances to predict: send one object or a non-empty list")
        limit = self.settings.max_batch_instances
        if len(instances) > limit:
            raise InvalidInput(
                f"a batch of {len(instances)} instances exceeds the limit of {limit}",
                limit=limit,
                received=len(instances),
            )
        route = await self._route(model)
        deployment = route.deployment
        # the models see the mended request; the record keeps the request as it was sent
        inputs: Sequence[Mapping[str, Any]] = instances
        if deployment is not None and deployment.input_repair:
            inputs = repair_instances(instances, deployment.input_repair)
        errors = route.validator.batch_errors(inputs)
        if errors:
            await self._record_refused(model, instances, errors)
            raise invalid_input(errors, len(inputs))
        if deployment is None or (deployment.live_version is None and not deployment.disabled):
            raise ServiceUnavailable(
                f"model {model!r} has no live version; deploy one first", model=model
            )
        if deployment.disabled:
            return await self._disabled(route, deployment, instances)

        plan: list[tuple[int, str]] = []
        if deployment.canary_version is not None and deployment.canary_weight > 0:
            share = canary_share(key) if key is not None else self._random.random()
            if share < deployment.canary_weight:
                plan.append((deployment.canary_version, "canary"))
        if deployment.live_version is not None:
            plan.append((deployment.live_version, "live"))
        if deployment.fallback_version is not None:
            plan.append((deployment.fallback_version, "fallback"))

        records: list[dict[str, Any]] = []
        failures: list[str] = []
        answered: tuple[int, str, list[dict[str, Any]]] | None = None
        tried: set[int] = set()
        for number, served_by in plan:
            if number in tried:
                continue
            tried.add(number)
            attempt_records, predictions, error = await self._attempt(
                route, number, served_by, inputs, recorded=instances
            )
            records.extend(attempt_records)
            if predictions is not None:
                answered = (number, served_by, attempt_records)
                break
            failures.append(f"{served_by} version {number}: {error}")

        shadow = deployment.shadow_version
        if shadow is not None and (answered is None or shadow != answered[0]):
            self._start_shadow(route, shadow, inputs)
        await self._record(records)
        if answered is None:
            raise ServiceUnavailable(
                f"model {model!r} could not answer: " + "; ".join(failures),
                model=model,
                failures=failures,
            )
        number, served_by, answer_records = answered
        reason = "; ".join(failures) if failures else None
        out = []
        for record in answer_records:
            item: dict[str, Any] = {
                "id": record["id"],
                "version": number,
                "served_by": served_by,
                "prediction": record["prediction"],
            }
            scores = record["scores"]
            if isinstance(scores, dict):
                item["probabilities"] = scores
            elif scores is not None:
                item["score"] = scores
            if reason:
                item["reason"] = reason
            out.append(item)
        return out

    async def _record_refused(
        self, model: str, instances: Sequence[Any], errors: Sequence[FieldError]
    ) -> None:
        """Keep each bad row of a refused request as an error record: its features as sent, no
        prediction, the reason. The caller still gets its 422 and nothing is served, but the
        monitor sees the refusals in the window's error rate and the broken fields in its
        quality checks: a schema break upstream would otherwise leave no trace but a status
        code. A row that is no JSON object (a client's bug, no features to keep) is not kept;
        a kept row's values are bounded as an error's ``received`` is (``printable``: a long
        text or a nested value cut short), and its keys to ``REFUSED_KEYS_KEPT``, so a refused
        request cannot store more than an accepted one."""
        reasons: dict[int, str] = {}
        for error in errors:
            reasons.setdefault(error.row, error.message)
        rows = [i for i in sorted(reasons) if isinstance(instances[i], Mapping)]
        if not rows:
            return
        kept = [
            {str(k): printable(v) for k, v in islice(instances[i].items(), REFUSED_KEYS_KEPT)}
            for i in rows
        ]
        records = self._records(model, None, "live", kept, None, 0.0, None, datetime.now(UTC))
        for record, row in zip(records, rows, strict=True):
            record["error"] = f"rejected: invalid input: {reasons[row]}"
        await self._record(records)

    async def _disabled(
        self, route: _Route, deployment: Deployment, instances: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        model = route.spec.name
        if deployment.default_response is None:
            why = f" ({deployment.reason})" if deployment.reason else ""
            raise ServiceUnavailable(
                f"model {model!r} is disabled{why}; no default response is configured",
                model=model,
                revision=deployment.revision,
            )
        default = deployment.default_response
        records = self._records(
            model,
            None,
            "default",
            instances,
            [Prediction(default)] * len(instances),
            0.0,
            None,
            datetime.now(UTC),
        )
        self._count(model, None, "default", len(instances))
        await self._record(records)
        return [
            {
                "id": r["id"],
                "version": None,
                "served_by": "default",
                "prediction": default,
                "reason": f"model {model!r} is disabled; this is its default response",
            }
            for r in records
        ]

    # ------------------------------------------------------------------------ shadow

    def _start_shadow(
        self, route: _Route, number: int, instances: Sequence[Mapping[str, Any]]
    ) -> None:
        model = route.spec.name
        if self._shadow_pending >= self._shadow_limit:
            self.metrics.shadow_dropped.labels(model).inc()
            return
        self._shadow_pending += 1
        task = asyncio.get_running_loop().create_task(self._shadow(route, number, instances))
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_done)

    def _shadow_done(self, task: asyncio.Task[Any]) -> None:
        self._shadow_tasks.discard(task)
        self._shadow_pending -= 1
        if not task.cancelled() and task.exception() is not None:
            log.error("shadow prediction failed: %s", task.exception())

    async def _shadow(
        self, route: _Route, number: int, instances: Sequence[Mapping[str, Any]]
    ) -> None:
        # give the answer a head start: the shadow begins after the response is on its way
        await asyncio.sleep(0)
        model = route.spec.name
        start = time.perf_counter()
        predictions: list[Prediction] | None = None
        error: str | None = None
        try:
            loaded = await self._version(route, number)
            if isinstance(loaded.predictor, RemotePredictor):
                predictions = await asyncio.wait_for(
                    loaded.predictor.apredict(instances), loaded.timeout_s + 1.0
                )
            else:
                loop = asyncio.get_running_loop()
                predictions = await loop.run_in_executor(
                    self._shadow_pool, loaded.predictor.predict, instances
                )
        except MlwardenError as exc:
            error = exc.message
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = (time.perf_counter() - start) * 1000.0
        series = self._series(model, number, "shadow")
        series.predictions.inc(len(instances))
        series.latency.observe(latency_ms / 1000.0)
        await self._record(
            self._records(
                model,
                number,
                "shadow",
                instances,
                predictions,
                latency_ms,
                error,
                datetime.now(UTC),
            )
        )

    async def drain_shadows(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) for running shadow copies, so their records are not lost on stop."""
        if self._shadow_tasks:
            await asyncio.wait(set(self._shadow_tasks), timeout=timeout_s)

    async def aclose(self) -> None:
        """Finish shadow copies, close remote clients and the worker threads."""
        for task in list(self._warming):
            task.cancel()
        await self.drain_shadows()
        for route in list(self._routes.values()):
            for loaded in route.versions.values():
                if isinstance(loaded.predictor, RemotePredictor):
                    await loaded.predictor.aclose()
        self._routes.clear()
        self._predict_pool.shutdown(wait=False, cancel_futures=True)
        self._shadow_pool.shutdown(wait=False, cancel_futures=True)
