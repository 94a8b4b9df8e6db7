"""Investigate a model known only by its URL, in one job: probe it, learn its baseline from the
first answers, keep probing while the monitor watches, diagnose what it found, recommend.

``mlwarden investigate URL`` runs an :class:`Investigator` in the command's own process;
``POST /v1/investigations`` hands one to the server's :class:`InvestigationRunner` (worker
threads of the server). Both record the investigation in the store
(:class:`~mlwarden.store.investigations.InvestigationRepo`) as it goes: progress and every
window's signals and findings, the probe records every ten seconds, and everything when the job
ends, so a failure (the endpoint went away, a timeout, the server stopped) keeps what was
already collected and says why it stopped; only a killed process loses its last seconds.

The pieces are the ones the rest of mlwarden runs on, not copies: probes are
:meth:`~mlwarden.serving.probe.Prober.probe_once` calls through a
:class:`~mlwarden.serving.predictors.RemotePredictor`; records become the monitor's table with
:func:`~mlwarden.monitor.window.records_frame`; the first ``baseline`` records are the
:class:`~mlwarden.monitor.engine.Monitor`'s reference (features, outputs and confidence, latency
and errors: the baseline a probed model otherwise lacks), each later window of ``window_size``
probes is one ``Monitor.process``; the findings go to
:func:`~mlwarden.diagnose.incident.diagnose_incident`, whose report is the incident report of
:mod:`mlwarden.diagnose.report`.

Rows to send come from a sample (``--sample FILE``: CSV, TSV, Parquet, JSON or JSON lines) or,
when the URL is the endpoint of a registered remote version, from that version's reference
sample (its model's schema too). Probe mode sends the same kind of rows throughout, so what it
can see change is the model's side: outputs and confidence, errors and latency.

>>> check_url("ftp://models.example/predict")
Traceback (most recent call last):
...
mlwarden.errors.InvalidInput: 'ftp://models.example/predict' is not an http(s) URL: \
investigate a model served over HTTP, e.g. http://host:8080/predict
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pandas as pd

from mlwarden.agent.policy import configured_policy
from mlwarden.clock import utcnow
from mlwarden.domain import FeatureSpec, FeatureType, Finding, ModelSpec, Task, mask_url
from mlwarden.errors import Conflict, InvalidInput, MlwardenError, NotFound
from mlwarden.lazy import lazy_module
from mlwarden.serving.predictors import RESPONSE_HINT, RemotePredictor, ResponseMapping
from mlwarden.serving.probe import Prober
from mlwarden.settings import Settings
from mlwarden.store.investigations import FINISHED, InvestigationRepo
from mlwarden.store.repository import Store
from mlwarden.store.writer import is_unreachable

if TYPE_CHECKING:
    from mlwarden.monitor.config import MonitorConfig
    from mlwarden.monitor.engine import Monitor

# imported when an investigation runs: every server makes its runner at start, and the
# monitor, its detectors and the diagnosis were about 5 MB of a server that never runs one
# (docs/benchmarks.md, "Gateway overhead")
_reports = lazy_module("mlwarden.agent.reports")
_prediction = lazy_module("mlwarden.detect.prediction")
_incident = lazy_module("mlwarden.diagnose.incident")
_backtest = lazy_module("mlwarden.monitor.backtest")
_engine = lazy_module("mlwarden.monitor.engine")
_window = lazy_module("mlwarden.monitor.window")
_text = lazy_module("mlwarden.stats.text")

__all__ = [
    "MAX_PROBES",
    "MAX_SAMPLE_BYTES",
    "MAX_SAMPLE_ROWS",
    "InvestigationFailed",
    "InvestigationProgress",
    "InvestigationRequest",
    "InvestigationRunner",
    "Investigator",
    "check_url",
    "rows_from_file",
]

log = logging.getLogger("mlwarden.investigate")

# A sample is a sample: beyond these, send a subset (the probes cycle through the rows anyway).
MAX_SAMPLE_ROWS = 10_000
MAX_SAMPLE_BYTES = 50 * 1024 * 1024
# baseline + windows x window_size: what one investigation may send an endpoint
MAX_PROBES = 50_000
# the baseline must be mostly answers: beyond this share of failed probes there is none
MAX_BASELINE_ERROR_SHARE = 0.5
# how often a running job writes its progress to the store, and its records, at most
SAVE_EVERY_S = 1.0
RECORDS_EVERY_S = 10.0


class InvestigationFailed(MlwardenError):
    """The investigation could not go on (the endpoint is unreachable, answers garbage, or the
    job was stopped); what it collected before is kept with the investigation."""

    status_code = 502


def check_url(url: str) -> str:
    """``url`` when it is an absolute http(s) URL with a host; ``InvalidInput`` otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("give the URL of the model's prediction endpoint")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(
            f"{mask_url(url)!r} is not an http(s) URL: investigate a model served over HTTP, "
            "e.g. http://host:8080/predict",
            url=mask_url(url),
        )
    if not parts.hostname:
        raise InvalidInput(f"{mask_url(url)!r} names no host", url=mask_url(url))
    return url


def _plain_value(value: Any) -> Any:
    """A JSON scalar for one cell: NaN and missing become None, NumPy scalars Python ones."""
    if hasattr(value, "item") and not isinstance(value, list | dict):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NaT:
        return None
    return value


def clean_rows(rows: Any, what: str = "the sample") -> list[dict[str, Any]]:
    """Rows as plain dicts of JSON scalars; ``InvalidInput`` naming the first bad row."""
    if not isinstance(rows, list):
        raise InvalidInput(f"{what} must be a list of rows (objects of feature values)")
    if not rows:
        raise InvalidInput(f"{what} has no rows: give at least one row of feature values")
    if len(rows) > MAX_SAMPLE_ROWS:
        raise InvalidInput(
            f"{what} is too large: {len(rows)} rows, the limit is {MAX_SAMPLE_ROWS}; send a "
            "sample (the probes cycle through its rows)",
            rows=len(rows),
            limit=MAX_SAMPLE_ROWS,
        )
    out = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping) or not row:
            raise InvalidInput(
                f"{what}: row {index} is not an object of feature values ({str(row)[:80]!r})",
                row=index,
            )
        cleaned = {}
        for key, value in row.items():
            value = _plain_value(value)
            if value is not None and not isinstance(value, str | int | float | bool):
                raise InvalidInput(
                    f"{what}: row {index}, feature {key!r} is not a number, string or boolean",
                    row=index,
                    feature=str(key),
                )
            cleaned[str(key)] = value
        out.append(cleaned)
    return out


def rows_from_file(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a sample file: CSV, TSV or Parquet (by suffix), a JSON array of objects (or
    ``{"instances": [...]}``), or JSON lines. ``InvalidInput`` for a missing, empty, malformed
    or too large file, naming it."""
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"sample file not found: {p}")
    if p.is_dir():
        raise InvalidInput(f"sample path is a folder, not a file: {p}")
    size = p.stat().st_size
    if size == 0:
        raise InvalidInput(f"sample file {p} is empty: give rows of feature values")
    if size > MAX_SAMPLE_BYTES:
        raise InvalidInput(
            f"sample file {p} is too large: {size} bytes, the limit is {MAX_SAMPLE_BYTES}; "
            "send a sample",
            bytes=size,
            limit=MAX_SAMPLE_BYTES,
        )
    suffix = p.suffix.lower()
    what = f"sample file {p}"
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(p.read_text(errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise InvalidInput(f"{what}: line {number} is not JSON: {exc}") from exc
        return clean_rows(rows, what)
    if suffix == ".json":
        try:
            data = json.loads(p.read_text(errors="replace"))
        except ValueError as exc:
            raise InvalidInput(f"{what} is not JSON: {exc}") from exc
        if isinstance(data, Mapping) and isinstance(data.get("instances"), list):
            data = data["instances"]
        return clean_rows(data, what)
    if suffix not in (".csv", ".tsv", ".txt", ".parquet", ".pq"):
        raise InvalidInput(
            f"{what}: unknown format {suffix or '(no suffix)'}; use .csv, .tsv, .parquet, "
            ".json or .jsonl"
        )
    frame = _backtest.read_table(p, "sample")
    if len(frame.columns) == 0 or len(frame) == 0:
        raise InvalidInput(f"{what} has no rows: give a header and rows of feature values")
    if any(str(c).startswith("Unnamed:") for c in frame.columns):
        raise InvalidInput(f"{what} has a column without a name: is its header row missing?")
    return clean_rows(frame.to_dict(orient="records"), what)


@dataclass
class InvestigationRequest:
    """What to investigate and how hard to probe it.

    ``rows``: the sample to send (None: the reference sample of the registered version whose
    endpoint is ``url``). ``target``: a column of the sample held back from
    the requests and recorded as each probe's label (the monitor then measures performance).
    ``response``: where the endpoint's answers keep what mlwarden reads, for a shape it does
    not know (:class:`~mlwarden.serving.predictors.ResponseMapping`). ``baseline`` probes
    learn the baseline, then ``windows`` windows of ``window_size`` probes
    each are monitored, at ``rate_per_s`` at most, each call timing out after ``timeout_ms``.
    """

    url: str
    rows: list[dict[str, Any]] | None = None
    target: str | None = None
    protocol: str = "json"
    remote_name: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    response: dict[str, str] = field(default_factory=dict)
    baseline: int = 200
    windows: int = 3
    window_size: int = 100
    rate_per_s: float = 50.0
    timeout_ms: float = 2_000.0

    def check(self) -> None:
        """``InvalidInput`` for anything out of bounds, before a probe is sent."""
        self.url = check_url(self.url)
        ResponseMapping.of(self.response)  # an unknown field is refused before any probe
        if self.rows is not None:
            self.rows = clean_rows(self.rows)
        if not 30 <= self.baseline <= MAX_PROBES:
            raise InvalidInput(f"baseline must be 30 to {MAX_PROBES} probes, got {self.baseline}")
        if not 30 <= self.window_size <= MAX_PROBES:
            raise InvalidInput(
                f"window_size must be 30 to {MAX_PROBES} probes, got {self.window_size}"
            )
        if not 1 <= self.windows <= 1000:
            raise InvalidInput(f"windows must be 1 to 1000, got {self.windows}")
        if self.total_probes > MAX_PROBES:
            raise InvalidInput(
                f"{self.total_probes} probes (baseline + windows x window_size) is too many: "
                f"the limit is {MAX_PROBES}",
                probes=self.total_probes,
                limit=MAX_PROBES,
            )
        if not 0 < self.rate_per_s <= 1000:
            raise InvalidInput(f"rate_per_s must be in (0, 1000], got {self.rate_per_s}")
        if not 1 <= self.timeout_ms <= 120_000:
            raise InvalidInput(f"timeout_ms must be 1 to 120000, got {self.timeout_ms}")

    @property
    def total_probes(self) -> int:
        return self.baseline + self.windows * self.window_size

    def params(self) -> dict[str, Any]:
        """What is stored and shown of the request: no header values, the rows counted."""
        shown = {k: v for k, v in asdict(self).items() if k not in ("rows", "headers", "url")}
        shown["sample_rows"] = None if self.rows is None else len(self.rows)
        shown["headers"] = sorted(self.headers)
        shown["total_probes"] = self.total_probes
        return shown


# ------------------------------------------------------------------ the model behind the URL


def _same_endpoint(a: str, b: str) -> bool:
    return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


def registered_source(
    store: Store, url: str
) -> tuple[ModelSpec, int, dict[str, Any], list[dict[str, Any]] | None] | None:
    """The registered remote version whose endpoint is ``url`` (the live one first, then the
    newest): its model's spec, number, endpoint and reference sample. None when there is none."""
    for spec in store.list_models():
        versions = [
            v
            for v in store.list_versions(spec.name)
            if v.kind == "remote" and _same_endpoint(str((v.endpoint or {}).get("url", "")), url)
        ]
        if not versions:
            continue
        deployment = store.get_deployment(spec.name)
        live = deployment.live_version if deployment is not None else None
        info = max(versions, key=lambda v: (v.number == live, v.number))
        endpoint = dict(info.endpoint or {})
        return spec, info.number, endpoint, store.reference_sample(spec.name, info.number)
    return None


def model_name_for(url: str) -> str:
    """A model name for an unregistered URL: its host, port and path, as a name may be."""
    parts = urlsplit(url)
    text = f"{parts.hostname or 'model'}-{parts.port or ''}-{parts.path}"
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", text).strip("-.")
    name = re.sub(r"-{2,}", "-", name)
    return (name or "model")[:128]


def _feature_type(values: Iterable[Any]) -> FeatureType:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return FeatureType.BOOLEAN
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return FeatureType.NUMERIC
    return FeatureType.TEXT if _text.is_free_text(present) else FeatureType.CATEGORICAL


def infer_spec(name: str, rows: Sequence[Mapping[str, Any]], target: str | None) -> ModelSpec:
    """A schema for an unregistered model from its sample: every column but ``target``, typed
    by its values (booleans, numbers, free text by ``stats.text.is_free_text``, else
    categories). The task is settled later, from the
    answers (:func:`infer_task`)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if target is not None and target not in columns:
        raise InvalidInput(
            f"the sample has no column {target!r} (the target); its columns: {columns}"
        )
    features = [
        FeatureSpec(name=c, type=_feature_type(row.get(c) for row in rows))
        for c in columns
        if c != target
    ]
    if not features:
        raise InvalidInput("the sample has no feature column besides the target")
    return ModelSpec(name=name, task=Task.CLASSIFICATION, features=features, target=target)


def infer_task(records: Sequence[Mapping[str, Any]]) -> Task:
    """Classification when the answers carry class probabilities or are labels (text,
    booleans, or a few whole numbers), regression when they are numbers without them."""
    answered = [r for r in records if r.get("error") is None and r.get("prediction") is not None]
    if any(isinstance(r.get("scores"), Mapping) for r in answered):
        return Task.CLASSIFICATION
    values = [r["prediction"] for r in answered]
    if not values or any(isinstance(v, str | bool) for v in values):
        return Task.CLASSIFICATION
    numbers = [v for v in values if isinstance(v, int | float)]
    whole = all(float(v).is_integer() for v in numbers)
    return Task.CLASSIFICATION if whole and len(set(numbers)) <= 20 else Task.REGRESSION


# ------------------------------------------------------------------------------ the job


class _Collected:
    """The records the probes made, in order (the prober's sink)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def submit(self, records: Iterable[Mapping[str, Any]]) -> None:
        self.records.extend(dict(r) for r in records)


def _finding_dict(finding: Finding) -> dict[str, Any]:
    return finding.model_dump(mode="json")


def _baseline_summary(monitor: Monitor, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the baseline says: probes, errors, latency, output shares and confidence."""
    system = monitor.system_baseline
    errors = sum(1 for r in records if r.get("error") is not None)
    outputs = {
        k: v for k, v in _prediction.output_signals(monitor.reference).items() if v is not None
    }
    return {
        "probes": len(records),
        "errors": errors,
        "error_rate": errors / len(records) if records else None,
        "latency_p50_ms": system.latency_p50_ms,
        "latency_p99_ms": system.latency_p99_ms,
        "outputs": outputs,
        "confidence_mean": outputs.get("score_mean"),
        "confidence_std": outputs.get("score_std"),
        # each text feature's lengths and words, which the windows are compared with
        "text": {
            name: stats.summary()
            for name, stats in monitor.reference.features.items()
            if isinstance(stats, _text.TextStats)
        },
    }


@dataclass
class InvestigationProgress:
    """Where a job is: its stage, probes sent of the total, windows judged, errors."""

    stage: str = "queued"
    done: int = 0
    total: int = 0
    window: int = 0
    windows: int = 0
    errors: int = 0
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["percent"] = round(100.0 * self.done / self.total, 1) if self.total else 0.0
        return out


class Investigator:
    """One investigation, run by :meth:`run` in the calling thread.

    ``on_progress`` is told the progress after every probe (the command line draws its bars
    from it); the store gets it and the partial result at most every ``SAVE_EVERY_S`` and at
    every stage, the records at most every ``RECORDS_EVERY_S`` and when the job ends.
    ``stop`` (an event) ends the job between two probes, as a failure that keeps what was
    collected.
    """

    def __init__(
        self,
        store: Store,
        request: InvestigationRequest,
        investigation_id: int,
        *,
        settings: Settings | None = None,
        on_progress: Callable[[InvestigationProgress], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.repo = InvestigationRepo(store)
        self.request = request
        self.id = investigation_id
        self.settings = settings or Settings()
        self.on_progress = on_progress
        self.stop = stop or threading.Event()
        self.progress = InvestigationProgress(total=request.total_probes, windows=request.windows)
        self.sink = _Collected()
        self.result: dict[str, Any] = {"windows": [], "findings": []}
        self._saved_at = 0.0
        self._records_at = time.monotonic()

    # -- bookkeeping

    def _save(self, *, force: bool = False, final: bool = False, **fields: Any) -> None:
        """Write the progress (at most every ``SAVE_EVERY_S`` unless ``force``), with the
        partial result; the records too at most every ``RECORDS_EVERY_S`` (each write holds
        them all: a run of thousands of probes must not rewrite them at every probe), and
        always when ``final`` (the job ends, done or failed)."""
        now = time.monotonic()
        if not force and not final and now - self._saved_at < SAVE_EVERY_S:
            return
        self._saved_at = now
        records = None
        if final or now - self._records_at >= RECORDS_EVERY_S:
            self._records_at = now
            records = self.sink.records
        self.repo.save(
            self.id,
            progress=self.progress.as_dict(),
            result=self.result,
            records=records,
            **fields,
        )

    def _stage(self, stage: str, message: str) -> None:
        self.progress.stage = stage
        self.progress.message = message
        self._tell()
        self._save(force=True)

    def _tell(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)

    # -- the run

    def prepare(self) -> tuple[ModelSpec, dict[str, Any], list[dict[str, Any]]]:
        """The schema, endpoint and rows: the registered version's, or the sample's."""
        request = self.request
        source = registered_source(self.store, request.url)
        endpoint: dict[str, Any] = {
            "url": request.url,
            "protocol": request.protocol,
            "headers": dict(request.headers),
        }
        if request.remote_name:
            endpoint["name"] = request.remote_name
        if request.response:
            endpoint["response"] = dict(request.response)
        if source is not None:
            spec, number, registered, reference = source
            self.result["registered"] = {"model": spec.name, "version": number}
            # the version's own endpoint (protocol, remote name, credentials), with the
            # request's headers over its own
            endpoint = {
                **registered,
                "headers": {**(registered.get("headers") or {}), **request.headers},
            }
            if request.response:
                endpoint["response"] = dict(request.response)
            rows = request.rows if request.rows is not None else reference
            if not rows:
                raise InvalidInput(
                    f"version {number} of {spec.name!r} has no reference sample: give a sample "
                    "of rows to send (--sample FILE)"
                )
            target = request.target or spec.target
            labelled = [dict(r) for r in rows]
            if target and request.rows is None:
                self.request.target = target
            return spec, endpoint, labelled
        if request.rows is None:
            raise InvalidInput(
                f"{mask_url(request.url)} is not the endpoint of a registered model: give a "
                "sample of rows to send (--sample FILE, or 'rows' in the request)"
            )
        spec = infer_spec(model_name_for(request.url), request.rows, request.target)
        self.result["registered"] = None
        return spec, endpoint, request.rows

    def _probe(self, prober: Prober, rows: Sequence[Mapping[str, Any]], count: int) -> None:
        """Send ``count`` rows (cycling), paced at the request's rate, keeping each record."""
        interval = 1.0 / self.request.rate_per_s
        next_at = time.monotonic()
        target = self.request.target
        for _ in range(count):
            if self.stop.is_set():
                why = getattr(self.stop, "reason", "the server shut down")
                raise InvestigationFailed(f"the investigation was stopped ({why})")
            index = self.progress.done % len(rows)
            record = prober.probe_once(prober.rows[index])  # the features only
            if target is not None:
                self.sink.records[-1]["label"] = rows[index].get(target)
            self.progress.done += 1
            if record["error"] is not None:
                self.progress.errors += 1
            self._tell()
            self._save()
            next_at = max(next_at + interval, time.monotonic())
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def _preflight(self, prober: Prober, rows: Sequence[Mapping[str, Any]]) -> None:
        """The first probe: an endpoint that cannot answer one call fails the job now, with
        what went wrong and what mlwarden expected."""
        self._probe(prober, rows, 1)
        error = self.sink.records[-1]["error"]
        if error is None:
            return
        hint = ""
        if "without" in error or "non-object" in error or "invalid JSON" in error:
            hint = f" ({RESPONSE_HINT})"
        elif "timed out" in error:
            hint = " (raise the timeout: --timeout-ms, or 'timeout_ms' in the request)"
        elif "answered HTTP" in error:
            hint = (
                " (is it the prediction URL, and does it take {'instances': [row, ...]}, or "
                "KServe v2 inputs with --protocol v2?)"
            )
        elif "failed:" in error:
            hint = " (is the URL right, and the model server up and reachable from here?)"
        raise InvestigationFailed(
            f"the first probe failed: {error}{hint}", url=mask_url(self.request.url)
        )

    def run(self) -> dict[str, Any]:
        """Probe, learn the baseline, monitor, diagnose; the result (also stored)."""
        request = self.request
        self.repo.save(self.id, state="running")
        self._stage("preparing", "reading the sample and the endpoint")
        spec, endpoint, rows = self.prepare()
        rows = list(rows)
        random.Random(0).shuffle(rows)  # a sorted file is not drift between windows
        predictor = RemotePredictor(endpoint, spec, timeout_s=request.timeout_ms / 1000.0)
        prober = Prober(spec, 0, predictor, rows, self.sink, rate_per_s=request.rate_per_s)
        try:
            self._stage("baseline", f"learning the baseline from {request.baseline} probes")
            self._preflight(prober, rows)
            self._probe(prober, rows, request.baseline - 1)
            baseline = self.sink.records[: request.baseline]
            failed = sum(1 for r in baseline if r["error"] is not None)
            if failed > MAX_BASELINE_ERROR_SHARE * len(baseline):
                last = next(r["error"] for r in reversed(baseline) if r["error"] is not None)
                raise InvestigationFailed(
                    f"{failed} of {len(baseline)} baseline probes failed (the last: {last}): "
                    "there is no baseline to compare with"
                )
            task = spec.task if self.result.get("registered") else infer_task(baseline)
            spec = spec.model_copy(update={"task": task})
            reference = _window.records_frame(baseline)
            monitor = _engine.Monitor(reference, spec, self._config(spec.name))
            self.result.update(
                model=spec.name,
                task=task.value,
                features=spec.feature_names,
                baseline=_baseline_summary(monitor, baseline),
            )
            start = request.baseline
            for index in range(request.windows):
                self.progress.window = index + 1
                self._stage(
                    "monitoring", f"window {index + 1} of {request.windows}: probing and judging"
                )
                self._probe(prober, rows, request.window_size)
                window = self.sink.records[start : start + request.window_size]
                start += request.window_size
                judged = monitor.process(_window.records_frame(window), index=index)
                self.result["windows"].append(
                    {
                        "window": index,
                        "n": judged.n,
                        "errors": sum(1 for r in window if r["error"] is not None),
                        "signals": dict(judged.signals),
                        "findings": [_finding_dict(f) for f in judged.findings],
                    }
                )
                self.result["findings"] += [_finding_dict(f) for f in judged.findings]
            self._stage("diagnosing", "diagnosing the findings")
            self._diagnose(spec)
        finally:
            predictor.close()
        self.progress.stage = "done"
        self.progress.message = self.result["summary"]
        self._tell()
        self._save(final=True, state="done")
        return self.result

    def _config(self, model: str) -> MonitorConfig:
        """The configured policy's detection settings (a model's own when it is registered),
        adapted to probing: no throughput check (the probes' pace is the investigation's, not
        the model's traffic), a latency ratio of at least 3 with the median at least 1.5
        times the baseline's too (a window of a hundred probes has for p99 about its
        second-slowest call, and the probes share the prober's host: twice the baseline's p99
        was measured on a healthy endpoint from a busy host, over 3 times in a window of 60
        while the test suite ran beside it; such stalls leave the median where it was), and
        no window held for late labels (an investigation's labels come with its probes)."""
        config = configured_policy(self.settings).for_model(model).monitor_config()
        return replace(
            config,
            throughput_ratio=0.0,
            latency_ratio=max(config.latency_ratio, 3.0),
            latency_median_ratio=max(config.latency_median_ratio, 1.5),
            late_label_windows=0,
        )

    def _diagnose(self, spec: ModelSpec) -> None:
        """The diagnosis of every finding, by the playbooks, with its report and advice."""
        findings = [Finding.model_validate(f) for f in self.result["findings"]]
        probes = len(self.sink.records)
        errors = sum(1 for r in self.sink.records if r["error"] is not None)
        if not findings:
            self.result.update(
                incident=False,
                severity=None,
                root_cause=None,
                diagnosis=None,
                recommendations=[],
                summary=(
                    f"no incident: {probes} probes ({errors} failed), baseline of "
                    f"{self.request.baseline}, {len(self.result['windows'])} windows judged "
                    "without a finding"
                ),
            )
            return
        flagged = [w for w in self.result["windows"] if w["findings"]]
        first = flagged[0]["window"]
        begin = self.request.baseline + first * self.request.window_size
        # each record's ``error`` is whether its answer was wrong (by its label), as in the
        # agent's incident reports, not the request's failure
        window_rows = _reports.answers_frame(
            self.sink.records[begin : begin + self.request.window_size], spec.task
        )
        reference_rows = _reports.answers_frame(
            self.sink.records[: self.request.baseline], spec.task
        )
        signals = [{"window": w["window"], **w["signals"]} for w in self.result["windows"]]
        diagnosis = _incident.diagnose_incident(
            findings,
            signals=signals,
            window_rows=window_rows,
            reference_rows=reference_rows,
            features=spec.feature_names,
            model=spec.name,
            generated_at=utcnow().isoformat(timespec="seconds"),
        )
        top = diagnosis.matches[0] if diagnosis.matches else None
        recommendations = [
            {"action": a["action"], "description": a["description"]} for a in diagnosis.actions
        ]
        kinds = sorted({f.kind.value for f in findings})
        self.result.update(
            incident=True,
            severity=diagnosis.severity.value,
            root_cause=None
            if top is None
            else {"id": top.id, "title": top.title, "confidence": top.confidence},
            diagnosis=diagnosis.to_dict(),
            recommendations=recommendations,
            report_markdown=diagnosis.to_markdown(),
            summary=(
                f"incident ({diagnosis.severity.value}): {', '.join(kinds)} from window "
                f"{first}; "
                + (f"likely cause: {top.title}" if top is not None else "no playbook matched")
            ),
        )


def run_investigation(
    store: Store,
    request: InvestigationRequest,
    *,
    actor: str,
    settings: Settings | None = None,
    on_progress: Callable[[InvestigationProgress], None] | None = None,
    stop: threading.Event | None = None,
    investigation_id: int | None = None,
) -> dict[str, Any]:
    """Run one investigation to its end in this thread and return its stored record; a
    failure is stored (state ``failed``, with its reason and everything collected) and
    raised again."""
    repo = InvestigationRepo(store)
    if investigation_id is None:
        request.check()
        investigation_id = repo.create(mask_url(request.url), request.params(), actor)
    investigator = Investigator(
        store, request, investigation_id, settings=settings, on_progress=on_progress, stop=stop
    )
    try:
        investigator.run()
    except Exception as exc:
        reason = exc.message if isinstance(exc, MlwardenError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, MlwardenError):  # the caller can point at what was kept
            exc.detail.setdefault("investigation", investigation_id)
        investigator.progress.stage = "failed"
        investigator.progress.message = reason
        try:
            investigator._save(final=True, state="failed", error=reason)
        except Exception:  # the store itself failed: the original error says more
            log.exception("investigation %s: could not store its failure", investigation_id)
        if not isinstance(exc, MlwardenError):
            log.exception("investigation %s failed", investigation_id)
        raise
    return repo.get(investigation_id)


class StopSignal(threading.Event):
    """An event that says why it was set: a job stopped by a person or by the server."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = "the server shut down"

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.set()


class InvestigationRunner:
    """The server's investigations: each submitted one runs on a worker thread (at most
    ``workers`` at once, the others queued), and is stopped, keeping what it collected, when
    the server shuts down. A server that starts marks the investigations left running by a
    server that stopped as failed (their runner is gone)."""

    def __init__(self, store: Store, settings: Settings, *, workers: int = 2) -> None:
        self.store = store
        self.settings = settings
        self.repo = InvestigationRepo(store)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlw-investigate")
        self._jobs: dict[int, Future[Any]] = {}
        self._signals: dict[int, StopSignal] = {}
        # on PostgreSQL another replica's jobs are still writing: only the idle ones are gone
        idle = None if store.dialect == "sqlite" else utcnow() - timedelta(minutes=5)
        try:
            self.repo.interrupt_unfinished(
                "interrupted: the server running it stopped before it finished", idle_since=idle
            )
        except Exception as exc:  # a server starts with its database down, and serves
            if not is_unreachable(exc):
                raise
            log.warning("database unreachable: investigations left running are not closed")

    def submit(self, request: InvestigationRequest, actor: str) -> dict[str, Any]:
        """Check the request, record it (``queued``) and start it; returns its record."""
        request.check()
        if request.rows is None and registered_source(self.store, request.url) is None:
            raise InvalidInput(
                f"{mask_url(request.url)} is not the endpoint of a registered model: send "
                "'rows' (a sample of feature values) to probe it with"
            )
        if self._stop.is_set():
            raise InvestigationFailed("the server is shutting down")
        investigation_id = self.repo.create(mask_url(request.url), request.params(), actor)
        self._signals[investigation_id] = StopSignal()
        self._jobs[investigation_id] = self._pool.submit(
            self._run, request, actor, investigation_id
        )
        return self.repo.get(investigation_id)

    def _run(self, request: InvestigationRequest, actor: str, investigation_id: int) -> None:
        signal = self._signals.setdefault(investigation_id, StopSignal())
        try:
            run_investigation(
                self.store,
                request,
                actor=actor,
                settings=self.settings,
                stop=signal,
                investigation_id=investigation_id,
            )
        except Exception:  # stored as failed by run_investigation; the worker goes on
            pass
        finally:
            self._jobs.pop(investigation_id, None)
            self._signals.pop(investigation_id, None)

    def cancel(self, investigation_id: int, actor: str) -> dict[str, Any]:
        """Stop an investigation of this server: a queued one never starts, a running one
        ends between two probes, stored as failed ("stopped by ``actor``") with what it
        collected. A finished one, or one another server process runs, is a conflict."""
        record = self.repo.get(investigation_id)  # NotFound for an unknown id
        if record["state"] in FINISHED:
            raise Conflict(
                f"investigation {investigation_id} has already ended ({record['state']})"
            )
        job = self._jobs.get(investigation_id)
        signal = self._signals.get(investigation_id)
        if job is None or signal is None:
            raise Conflict(
                f"investigation {investigation_id} is not running on this server process: "
                "stop it on the server that started it"
            )
        reason = f"stopped by {actor}"
        signal.stop(reason)
        if job.cancel():  # still queued: it will never run, so its record is ended here
            self._jobs.pop(investigation_id, None)
            self._signals.pop(investigation_id, None)
            self.repo.save(investigation_id, state="failed", error=f"{reason} before it started")
        return self.repo.get(investigation_id)

    def wait(self, investigation_id: int, timeout: float | None = None) -> bool:
        """Wait for a job of this server to end; True when it has (or is not running here)."""
        job = self._jobs.get(investigation_id)
        if job is None:
            return True
        try:
            job.result(timeout)
        except TimeoutError:
            return False
        except Exception:
            return True
        return True

    def stop(self) -> None:
        """Stop the running jobs between two probes (each is stored as failed, keeping what
        it collected) and the queued ones before they start."""
        self._stop.set()
        for signal in list(self._signals.values()):
            signal.stop("the server shut down")
        self._pool.shutdown(wait=True, cancel_futures=True)
        # a job cancelled before it started never ran: say so in its record
        for investigation_id in list(self._jobs):
            try:
                self.repo.save(
                    investigation_id,
                    state="failed",
                    error="interrupted: the server stopped before the investigation started",
                )
            except NotFound:
                pass
            except Exception:
                log.exception("investigation %s: could not record its end", investigation_id)
        self._jobs.clear()
