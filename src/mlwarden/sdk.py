"""The Python SDK: talk to an mlwarden server from the code that serves or trains a model.

``log`` and ``feedback`` only queue; a background thread sends them in batches (JSON lines)
and retries when the server is unreachable or busy. ``flush`` waits until everything queued is
sent; ``close`` (or leaving the ``with`` block) flushes and stops the thread.

>>> from mlwarden import Client
>>> with Client("http://127.0.0.1:8000", token="mlw_...") as client:  # doctest: +SKIP
...     ids = client.log("fraud", frame)            # a pandas or polars DataFrame, or dicts
...     client.feedback("fraud", {ids[0]: 1})       # labels by record id, any time later
...     client.predict("fraud", {"amount": 12.5})   # through the gateway

Investigate a model known only by its URL (a job of the server: probe, baseline, monitor,
diagnose), wait for it, read its report:

>>> with Client("http://127.0.0.1:8000", token="mlw_...") as client:  # doctest: +SKIP
...     started = client.investigate("http://models:8080/predict", rows=sample, target="label")
...     done = client.wait_for_investigation(started["id"], timeout_s=600)
...     done["result"]["summary"]           # 'incident (high): confidence from window 1; ...'
...     client.investigation_report(done["id"])             # Markdown
...     probes = list(client.investigation_records(done["id"]))  # a page at a time
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, overload

import httpx

__all__ = ["INVESTIGATION_FINISHED", "Client", "ClientError", "SendFailure"]

# the states in which an investigation has ended (``wait_for_investigation`` stops at them)
INVESTIGATION_FINISHED = ("done", "failed")

log = logging.getLogger(__name__)

# Columns of a flat row that describe the prediction rather than being features.
RECORD_FIELDS = (
    "id",
    "prediction",
    "scores",
    "score",
    "latency_ms",
    "timestamp",
    "version",
    "error",
)


class ClientError(Exception):
    """The server refused a request; ``status`` and the server's ``detail`` are kept."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.detail = detail


@dataclass
class SendFailure:
    """A batch the background sender could not deliver (refused, or out of retries)."""

    kind: str
    model: str
    rows: int
    error: str


@dataclass
class _Batch:
    kind: str  # "records" | "feedback"
    model: str
    rows: list[dict[str, Any]] = field(default_factory=list)


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN → null, numpy scalars → Python, datetimes → ISO text."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy / pandas scalars
        try:
            return _clean(value.item())
        except (ValueError, TypeError):
            pass
    if hasattr(value, "isoformat"):
        return value.isoformat()
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (ImportError, TypeError, ValueError):
        pass
    return str(value)


def _rows_of(data: Any) -> list[dict[str, Any]]:
    """Rows (dicts) of a list of dicts, one dict, a pandas or a polars DataFrame."""
    if isinstance(data, Mapping):
        return [dict(data)]
    if hasattr(data, "to_dicts"):  # polars
        return list(data.to_dicts())
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas
        return list(data.to_dict(orient="records"))
    if isinstance(data, Iterable) and not isinstance(data, str | bytes):
        rows = list(data)
        if not all(isinstance(r, Mapping) for r in rows):
            raise TypeError("rows must be mappings (dicts) of column name to value")
        return [dict(r) for r in rows]
    raise TypeError(f"expected dicts or a DataFrame, got {type(data).__name__}")


def _as_record(row: dict[str, Any]) -> dict[str, Any]:
    """A record with nested ``features`` from either a nested or a flat row; assigns an id."""
    if "features" in row and isinstance(row["features"], Mapping):
        record = {k: v for k, v in row.items() if k != "features"}
        record["features"] = dict(row["features"])
    else:
        record = {k: row[k] for k in RECORD_FIELDS if k in row}
        record["features"] = {k: v for k, v in row.items() if k not in RECORD_FIELDS}
    if "score" in record and "scores" not in record:
        record["scores"] = record.pop("score")
    if not record.get("id"):
        record["id"] = uuid.uuid4().hex
    return _clean(record)


class Client:
    """A client of one mlwarden server.

    ``batch_size`` rows per request; a partial batch is sent after ``flush_interval_s``.
    Failed sends are retried ``max_retries`` times with exponential backoff; batches that
    still fail, or that the server refuses (4xx), are kept in :attr:`failures`.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        batch_size: int = 1_000,
        flush_interval_s: float = 1.0,
        timeout_s: float = 30.0,
        max_retries: int = 5,
        retry_backoff_s: float = 0.2,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.failures: list[SendFailure] = []
        self.unknown_ids: list[str] = []
        self.sent = {"records": 0, "feedback": 0}
        self._queue: deque[tuple[str, str, dict[str, Any]]] = deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mlwarden-sdk", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ synchronous calls

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            self._raise(response)
        return response.json() if response.content else None

    @staticmethod
    def _raise(response: httpx.Response) -> None:
        """The server's refusal as a :class:`ClientError` (its message and detail kept)."""
        try:
            body = response.json()
        except ValueError:
            raise ClientError(response.status_code, response.text[:200]) from None
        raise ClientError(response.status_code, body.get("error", ""), body.get("detail"))

    def predict(
        self,
        model: str,
        instances: Mapping[str, Any] | Sequence[Mapping[str, Any]] | Any,
        key: str | None = None,
    ) -> Any:
        """Predict through the gateway: one dict (answer dict) or many (list of answers)."""
        single = isinstance(instances, Mapping)
        rows = [_clean(dict(r)) for r in _rows_of(instances)]
        body: dict[str, Any] = {"instances": rows[0] if single else rows}
        if key is not None:
            body["key"] = key
        answer = self._request("POST", f"/v1/models/{model}/predict", json=body)
        return answer["predictions"][0] if single else answer["predictions"]

    def explain(
        self,
        model: str,
        instance: Mapping[str, Any],
        version: int | None = None,
        method: str = "auto",
    ) -> dict[str, Any]:
        """Each feature's contribution to a version's answer (the live one by default) for
        ``instance``, largest first: ``POST /v1/models/{model}/explain`` (viewer token)."""
        body: dict[str, Any] = {"instance": _clean(dict(instance)), "method": method}
        if version is not None:
            body["version"] = version
        result: dict[str, Any] = self._request("POST", f"/v1/models/{model}/explain", json=body)
        return result

    def register_model(self, spec: Mapping[str, Any] | Any) -> dict[str, Any]:
        """Register a model from a ``ModelSpec`` or its dict (admin token)."""
        payload = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else dict(spec)
        result: dict[str, Any] = self._request("POST", "/v1/models", json=payload)
        return result

    def upload_version(
        self,
        model: str,
        estimator: Any,
        *,
        metrics: Mapping[str, Any] | None = None,
        reference: Any = None,
        timeout_ms: float | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """Upload a fitted scikit-learn estimator (saved with skops) or skops bytes."""
        if isinstance(estimator, bytes | bytearray):
            artifact = bytes(estimator)
        else:
            import skops.io

            artifact = skops.io.dumps(estimator)
        data: dict[str, str] = {"description": description}
        if metrics:
            data["metrics"] = json.dumps(_clean(dict(metrics)))
        if reference is not None:
            data["reference"] = json.dumps([_clean(r) for r in _rows_of(reference)])
        if timeout_ms is not None:
            data["timeout_ms"] = str(timeout_ms)
        result: dict[str, Any] = self._request(
            "POST",
            f"/v1/models/{model}/versions",
            files={"file": ("model.skops", artifact, "application/octet-stream")},
            data=data,
        )
        return result

    def deploy(self, model: str, version: int, reason: str = "", **changes: Any) -> dict[str, Any]:
        """Make ``version`` live (plus any other deployment fields, e.g. fallback_version)."""
        body = {"live_version": version, "reason": reason, **changes}
        result: dict[str, Any] = self._request("PATCH", f"/v1/models/{model}/deployment", json=body)
        return result

    # ------------------------------------------------------------------ investigations

    def investigate(
        self,
        url: str,
        rows: Any = None,
        *,
        target: str | None = None,
        protocol: Literal["json", "v2", "kserve"] = "json",
        remote_name: str | None = None,
        headers: Mapping[str, str] | None = None,
        response: Mapping[str, str] | None = None,
        baseline: int = 200,
        windows: int = 3,
        window_size: int = 100,
        rate_per_s: float = 50.0,
        timeout_ms: float = 2_000.0,
    ) -> dict[str, Any]:
        """Start an investigation of the model at ``url`` (operator token) and return its
        record at once (``state`` queued or running); follow it with
        :meth:`wait_for_investigation`.

        ``rows``: the sample to send (dicts or a DataFrame; optional when ``url`` is the
        endpoint of a registered remote version), ``target`` a column of it held back as the
        label. ``response`` maps an answer shape mlwarden does not read by itself
        (``predictions``, ``prediction``, ``confidence``, ``probabilities``: dotted paths).
        ``baseline`` probes learn the baseline, then ``windows`` windows of ``window_size``
        probes are judged, at ``rate_per_s`` at most. A request that cannot be investigated is
        refused at once (:class:`ClientError`, 422)."""
        body: dict[str, Any] = {
            "url": url,
            "protocol": protocol,
            "baseline": baseline,
            "windows": windows,
            "window_size": window_size,
            "rate_per_s": rate_per_s,
            "timeout_ms": timeout_ms,
        }
        if rows is not None:
            body["rows"] = [_clean(r) for r in _rows_of(rows)]
        if target is not None:
            body["target"] = target
        if remote_name is not None:
            body["remote_name"] = remote_name
        if headers:
            body["headers"] = dict(headers)
        if response:
            body["response"] = dict(response)
        result: dict[str, Any] = self._request("POST", "/v1/investigations", json=body)
        return result

    def investigation(self, investigation_id: int) -> dict[str, Any]:
        """An investigation's record: ``state``, ``progress`` (stage, probes ``done`` of
        ``total``, ``percent``) and, once done, its ``result`` (baseline, windows, findings,
        diagnosis, recommendations, summary)."""
        result: dict[str, Any] = self._request("GET", f"/v1/investigations/{investigation_id}")
        return result

    def stop_investigation(self, investigation_id: int) -> dict[str, Any]:
        """Stop an investigation this server runs: queued, it never starts; running, it ends
        between two probes, stored as failed ("stopped by ...") with what it collected.
        Raises the server's 409 as an error when it has already ended."""
        result: dict[str, Any] = self._request(
            "POST", f"/v1/investigations/{investigation_id}/stop"
        )
        return result

    def investigations(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest investigations first, each with a ``brief`` of its result."""
        answer = self._request("GET", "/v1/investigations", params={"limit": limit})
        found: list[dict[str, Any]] = answer["investigations"]
        return found

    def wait_for_investigation(
        self,
        investigation_id: int,
        *,
        timeout_s: float = 600.0,
        poll_s: float = 1.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll an investigation until it ends (``done`` or ``failed``: look at ``state``, and
        ``error`` for why it failed) and return its record. ``on_progress`` is called with
        each record read while it runs. ``TimeoutError`` after ``timeout_s``: the job goes on
        on the server; wait again or read it later."""
        deadline = time.monotonic() + timeout_s
        while True:
            record = self.investigation(investigation_id)
            if record["state"] in INVESTIGATION_FINISHED:
                return record
            if on_progress is not None:
                on_progress(record)
            left = deadline - time.monotonic()
            if left <= 0:
                progress = record.get("progress") or {}
                raise TimeoutError(
                    f"investigation {investigation_id} is still {record['state']} after "
                    f"{timeout_s:g} s ({progress.get('done', 0)} of {progress.get('total', 0)} "
                    "probes): it goes on on the server"
                )
            time.sleep(min(poll_s, left))

    @overload
    def investigation_report(
        self, investigation_id: int, format: Literal["markdown", "html"] = ...
    ) -> str: ...

    @overload
    def investigation_report(
        self, investigation_id: int, format: Literal["json"]
    ) -> dict[str, Any]: ...

    def investigation_report(
        self, investigation_id: int, format: Literal["markdown", "html", "json"] = "markdown"
    ) -> str | dict[str, Any]:
        """The incident report of a finished investigation that found one: Markdown or HTML
        text, or the diagnosis as a dict (``json``). :class:`ClientError` 409 while it runs,
        when it failed, or when it found no incident."""
        response = self._http.get(
            f"/v1/investigations/{investigation_id}/report", params={"format": format}
        )
        if response.status_code >= 400:
            self._raise(response)
        if format == "json":
            found: dict[str, Any] = response.json()
            return found
        return response.text

    def investigation_records(
        self, investigation_id: int, *, page_size: int = 1_000, start: int = 0
    ) -> Iterator[dict[str, Any]]:
        """Every probe record of an investigation from ``start``, in the order they were
        made, fetched a page of ``page_size`` (at most 5,000) at a time as the iteration goes:
        a 50,000-probe investigation is never held whole."""
        offset: int | None = start
        while offset is not None:
            page = self._request(
                "GET",
                f"/v1/investigations/{investigation_id}/records",
                params={"offset": offset, "limit": page_size},
            )
            yield from page["records"]
            offset = page["next_offset"]

    # ------------------------------------------------------------------ queued calls

    def log(self, model: str, records: Any) -> list[str]:
        """Queue prediction records (dicts or a DataFrame); returns their record ids.

        A row is either ``{"features": {...}, "prediction": ..., ...}`` or flat: every column
        that is not one of ``id, prediction, scores, score, latency_ms, timestamp, version,
        error`` is a feature. Rows without an id get one (use it for :meth:`feedback`).
        """
        prepared = [_as_record(row) for row in _rows_of(records)]
        self._enqueue("records", model, prepared)
        return [r["id"] for r in prepared]

    def feedback(self, model: str, labels: Any) -> int:
        """Queue ground-truth labels: ``{id: label}``, dicts with ``id`` and ``label``, or a
        DataFrame with those columns. Unknown ids end up in :attr:`unknown_ids`."""
        if isinstance(labels, Mapping) and not ("id" in labels and "label" in labels):
            rows = [{"id": str(k), "label": v} for k, v in labels.items()]
        else:
            rows = [{"id": str(r["id"]), "label": r["label"]} for r in _rows_of(labels)]
        prepared = [_clean(r) for r in rows]
        self._enqueue("feedback", model, prepared)
        return len(prepared)

    def _enqueue(self, kind: str, model: str, rows: list[dict[str, Any]]) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the client is closed")
            self._queue.extend((kind, model, row) for row in rows)
            if len(self._queue) >= self.batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Wait until everything queued so far is sent (or given up). False on timeout."""
        with self._cond:
            self._flush_now = True
            self._cond.notify_all()
            return self._cond.wait_for(
                lambda: (not self._queue and self._in_flight == 0) or not self._thread.is_alive(),
                timeout,
            )

    def close(self) -> None:
        """Send what is queued, stop the sender thread, close the connection."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ sender thread

    _flush_now = False

    def _take(self) -> list[_Batch]:
        """Group the queue (in order) into per-(kind, model) batches of ``batch_size``."""
        batches: list[_Batch] = []
        current: _Batch | None = None
        while self._queue:
            kind, model, row = self._queue.popleft()
            if (
                current is None
                or (current.kind, current.model) != (kind, model)
                or len(current.rows) >= self.batch_size
            ):
                current = _Batch(kind, model)
                batches.append(current)
            current.rows.append(row)
        return batches

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._closed or self._flush_now or len(self._queue) >= self.batch_size,
                    self.flush_interval_s,
                )
                self._flush_now = False
                closed = self._closed
                batches = self._take()
                self._in_flight = sum(len(b.rows) for b in batches)
            for batch in batches:
                self._send(batch)
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()
                if closed and not self._queue:
                    return

    def _send(self, batch: _Batch) -> None:
        body = "".join(json.dumps(row, allow_nan=False) + "\n" for row in batch.rows)
        path = f"/v1/models/{batch.model}/{batch.kind}"
        error = "not sent"
        for attempt in range(self.max_retries + 1):
            try:
                response = self._http.post(
                    path,
                    content=body.encode(),
                    headers={"Content-Type": "application/x-ndjson"},
                )
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    result = response.json()
                    self.sent[batch.kind] += len(batch.rows)
                    if batch.kind == "feedback":
                        self.unknown_ids.extend(result.get("unknown_ids", []))
                    return
                error = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # refused: retrying the same rows cannot help
            if attempt < self.max_retries:
                time.sleep(self.retry_backoff_s * (2**attempt))
        log.error(
            "mlwarden: could not send %d %s rows of %s: %s",
            len(batch.rows),
            batch.kind,
            batch.model,
            error,
        )
        self.failures.append(SendFailure(batch.kind, batch.model, len(batch.rows), error))
