"""Capture from models served elsewhere: bulk records, delayed labels, probing.

``POST /v1/models/{name}/records`` takes JSON lines, CSV or Parquet (by ``Content-Type``). Any
bad row rejects the whole batch with the list of bad rows, and nothing is stored, unless the
caller asks ``?partial=true``: then the good rows are stored and the bad ones reported. An
upload is stored in one transaction, and rows without an id get one derived from their
content, so retrying an upload stores each row once (see ``capture.ingest``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from mlwarden.api.deps import Principal, ServerState, as_object, require, server
from mlwarden.api.openapi import body_doc, json_body_doc, model_ref
from mlwarden.api.routes_models import pydantic_error
from mlwarden.capture.validation import parse_json
from mlwarden.domain import Id, Role
from mlwarden.errors import InvalidInput
from mlwarden.lazy import lazy_module

router = APIRouter(tags=["capture"])

# imported by the first bulk upload: a server that only serves predictions never needs the
# readers of JSON lines, CSV and Parquet (docs/benchmarks.md, "Gateway overhead")
_ingest = lazy_module("mlwarden.capture.ingest")


@router.post(
    "/v1/models/{name}/records",
    summary="Bulk prediction records (JSON lines, CSV, Parquet)",
    description=(
        "The format comes from Content-Type: application/x-ndjson, text/csv or "
        "application/vnd.apache.parquet. Any bad row rejects the whole upload (422 listing "
        "row, field, expected, received) unless `partial=true`. A `label` column becomes "
        "feedback. The upload is stored whole or not at all; a row without `id` gets one "
        "derived from its content, so a retried upload stores each row once."
    ),
    openapi_extra=body_doc(
        {
            "application/x-ndjson": {"type": "string"},
            "text/csv": {"type": "string"},
            "application/vnd.apache.parquet": {"type": "string", "format": "binary"},
        }
    ),
)
async def ingest(
    name: str,
    request: Request,
    partial: bool = False,
    principal: Principal = Depends(require(Role.OPERATOR)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    fmt = _ingest.detect_format(request.headers.get("content-type"))
    body = await request.body()
    if not body.strip():
        raise InvalidInput("the request body is empty; send records")
    report = await run_in_threadpool(
        _ingest.ingest_records, state.store, name, body, fmt, partial=partial
    )
    state.metrics.records_ingested.labels(name).inc(report.stored)
    return JSONResponse(report.as_dict())


def _labels(body: Any) -> list[tuple[str, Any]]:
    items: Any
    if isinstance(body, dict) and "labels" in body:
        items = body["labels"]
    elif isinstance(body, dict):
        items = [body]
    else:
        items = body
    if not isinstance(items, list) or not items:
        raise InvalidInput(
            "feedback must be {'id': ..., 'label': ...}, a list of them, or {'labels': [...]}"
        )
    out = []
    for row, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidInput(f"feedback row {row} is not an object", row=row)
        record_id = item.get("id", item.get("record_id"))
        if not isinstance(record_id, str | int) or isinstance(record_id, bool) or record_id == "":
            raise InvalidInput(f"feedback row {row} needs an 'id' (the record id)", row=row)
        if "label" not in item or item["label"] is None:
            raise InvalidInput(f"feedback row {row} needs a 'label'", row=row)
        label = item["label"]
        if not isinstance(label, str | int | float | bool):
            raise InvalidInput(
                f"feedback row {row}: a label must be a string, number or boolean", row=row
            )
        out.append((str(record_id), label))
    return out


class Label(BaseModel):
    """One label, for the OpenAPI document (``_labels`` reads feedback by hand)."""

    id: str | int = Field(description="The record id the prediction answered with.")
    label: str | int | float | bool


_LABELS = {"type": "array", "minItems": 1, "items": model_ref(Label)}


def _store_feedback(
    state: ServerState, name: str, raw: bytes, lines: bool
) -> tuple[int, list[str]]:
    """Parse and store labels; run in a worker thread, as 50,000 ids take a while to look up
    and must not hold the event loop (predictions) meanwhile."""
    if not raw.strip():
        raise InvalidInput("the request body is empty; send labels")
    if lines:
        body: Any = [parse_json(line) for line in raw.splitlines() if line.strip()]
    else:
        body = parse_json(raw)
    labels = _labels(body)
    accepted, unknown = state.store.add_feedback(name, labels)
    if unknown:
        # a label may overtake its record, still in the writer's buffer: flush, then retry those
        state.writer.flush(10.0)
        missing = set(unknown)
        retry = [pair for pair in labels if pair[0] in missing]
        more, unknown = state.store.add_feedback(name, retry)
        accepted += more
    return accepted, unknown


@router.post(
    "/v1/models/{name}/feedback",
    summary="Ground-truth labels for record ids",
    openapi_extra=body_doc(
        {
            "application/json": {
                "anyOf": [
                    model_ref(Label),
                    _LABELS,
                    {"type": "object", "required": ["labels"], "properties": {"labels": _LABELS}},
                ]
            },
            "application/x-ndjson": {"type": "string", "description": "One label per line."},
        }
    ),
)
async def feedback(
    name: str,
    request: Request,
    principal: Principal = Depends(require(Role.OPERATOR)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    lines = content_type in {"application/x-ndjson", "application/jsonl", "application/jsonlines"}
    raw = await request.body()
    accepted, unknown = await run_in_threadpool(_store_feedback, state, name, raw, lines)
    state.metrics.feedback.labels(name).inc(accepted)
    return JSONResponse({"accepted": accepted, "unknown_ids": unknown})


class ProbeRequest(BaseModel):
    version: Id | None = None
    rate_per_s: float = Field(default=1.0, gt=0, le=1000)
    max_requests: int | None = Field(default=None, gt=0)


@router.post(
    "/v1/models/{name}/probe",
    summary="Start probing a remote version",
    openapi_extra=json_body_doc(ProbeRequest, required=False),
)
async def start_probe(
    name: str,
    request: Request,
    principal: Principal = Depends(require(Role.OPERATOR)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    raw = await request.body()
    values = as_object(parse_json(raw), "a probe request") if raw.strip() else {}
    try:
        body = ProbeRequest.model_validate(values)
    except ValidationError as exc:
        raise pydantic_error(exc, "probe request") from None
    status = await run_in_threadpool(
        lambda: state.probes.start(
            name,
            version=body.version,
            rate_per_s=body.rate_per_s,
            max_requests=body.max_requests,
        )
    )
    await run_in_threadpool(
        state.store.audit, principal.name, "probe.start", name, status.as_dict()
    )
    return JSONResponse(status.as_dict(), status_code=201)


@router.get("/v1/models/{name}/probe", summary="Probing status")
async def probe_status(
    name: str, _: Principal = Depends(require(Role.VIEWER)), state: ServerState = Depends(server)
) -> JSONResponse:
    return JSONResponse(state.probes.status(name).as_dict())


@router.delete("/v1/models/{name}/probe", summary="Stop probing")
async def stop_probe(
    name: str,
    principal: Principal = Depends(require(Role.OPERATOR)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    status = await run_in_threadpool(state.probes.stop, name)
    await run_in_threadpool(state.store.audit, principal.name, "probe.stop", name, {})
    return JSONResponse(status.as_dict())
