"""Investigations of a model by its URL: ``POST /v1/investigations`` starts one (a job of the
server, :class:`~mlwarden.agent.investigate.InvestigationRunner`) and answers 202 with its
record; ``GET /v1/investigations/{id}`` follows it (``state``, ``progress``) and, once it is
done, holds its baseline, windows, findings, diagnosis, recommendations and report;
``GET /v1/investigations/{id}/records`` pages through its probe records (``?records=true`` on
the investigation adds the first page, or the page that ``records_offset`` and
``records_limit`` name): a page holds ``RECORDS_PAGE`` records unless asked for up to
``MAX_RECORDS_PAGE``, because 50,000 probes are ~15 MB of JSON;
``GET /v1/investigations/{id}/report`` is that report as Markdown or HTML, the incident report
of ``diagnose.report``. A request that cannot be investigated (not an http(s) URL, no rows and
no registered model at that URL, a sample too large) is refused at once (422); what goes wrong
with the endpoint (unreachable, timing out, answering garbage) fails the job, whose record
keeps the reason and every probe it made.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from mlwarden.agent.investigate import (
    MAX_PROBES,
    MAX_SAMPLE_ROWS,
    InvestigationRequest,
    InvestigationRunner,
)
from mlwarden.api.deps import Principal, RowId, ServerState, as_object, require, server
from mlwarden.api.openapi import json_body_doc
from mlwarden.api.routes_models import pydantic_error
from mlwarden.capture.validation import parse_json
from mlwarden.domain import Role
from mlwarden.errors import Conflict, ServiceUnavailable
from mlwarden.lazy import lazy_module
from mlwarden.store.investigations import (
    MAX_RECORDS_PAGE,
    RECORDS_PAGE,
    InvestigationRepo,
    RecordsPage,
)

router = APIRouter(prefix="/v1/investigations", tags=["investigations"])

# imported by the first report asked for (the diagnosis brings the playbooks': docs/benchmarks.md,
# "Gateway overhead")
_incident = lazy_module("mlwarden.diagnose.incident")


class InvestigationBody(BaseModel):
    """``POST /v1/investigations``: the endpoint, the rows to send, how hard to probe."""

    model_config = {"extra": "forbid"}

    url: str = Field(max_length=2048, description="The model's prediction endpoint (http/https).")
    rows: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=MAX_SAMPLE_ROWS,
        description="A sample of feature values to send; optional when the URL is the endpoint "
        "of a registered remote version (its reference sample is sent).",
    )
    target: str | None = Field(default=None, description="A column of rows held back as label.")
    protocol: Literal["json", "v2", "kserve"] = "json"
    remote_name: str | None = Field(default=None, description="The model's name on a v2 server.")
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every probe.")
    response: dict[str, str] = Field(
        default_factory=dict,
        description="The response field mapping, for an answer shape mlwarden does not read by "
        "itself: 'predictions' (dotted path to the answers), 'prediction', 'confidence', "
        "'probabilities' (paths inside an answer).",
    )
    baseline: int = Field(default=200, ge=30, le=MAX_PROBES)
    windows: int = Field(default=3, ge=1, le=1000)
    window_size: int = Field(default=100, ge=30, le=MAX_PROBES)
    rate_per_s: float = Field(default=50.0, gt=0, le=1000)
    timeout_ms: float = Field(default=2_000.0, ge=1, le=120_000)


def _runner(state: ServerState) -> InvestigationRunner:
    if state.investigations is None:
        raise ServiceUnavailable("this server runs no investigations")
    return state.investigations


@router.post(
    "",
    summary="Investigate a model by its URL (a job: probe, baseline, monitor, diagnose)",
    status_code=202,
    openapi_extra=json_body_doc(InvestigationBody),
)
async def start_investigation(
    request: Request,
    principal: Principal = Depends(require(Role.OPERATOR)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    values = as_object(parse_json(await request.body()), "an investigation request")
    record = await run_in_threadpool(start, state, values, principal.name)
    return JSONResponse(
        record, status_code=202, headers={"Location": f"/v1/investigations/{record['id']}"}
    )


def start(state: ServerState, values: dict[str, Any], actor: str) -> dict[str, Any]:
    """Check ``values`` (an :class:`InvestigationBody`), start the investigation on the
    server's runner and audit it as ``actor``'s; its record (``queued``). The API and the
    dashboard's form both start one here, so both check and record it the same way."""
    try:
        body = InvestigationBody.model_validate(values)
    except ValidationError as exc:
        raise pydantic_error(exc, "investigation request") from None
    record = _runner(state).submit(InvestigationRequest(**body.model_dump()), actor)
    state.store.audit(
        actor,
        "investigation.start",
        record["url"],
        {"investigation": record["id"], **record["params"]},
    )
    return record


@router.post(
    "/{investigation_id}/stop",
    summary="Stop an investigation",
    description="A queued investigation never starts; a running one ends between two probes. "
    "Either is stored as failed (`stopped by <you>`), keeping the records and windows it "
    "collected. 409 when it has already ended or runs on another server process.",
)
async def stop_investigation(
    investigation_id: RowId,
    principal: Principal = Depends(require(Role.OPERATOR)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    record = await run_in_threadpool(stop, state, investigation_id, principal.name)
    return JSONResponse(record)


def stop(state: ServerState, investigation_id: int, actor: str) -> dict[str, Any]:
    """Stop ``investigation_id`` as ``actor`` and audit it (the API and the dashboard)."""
    record = _runner(state).cancel(investigation_id, actor)
    state.store.audit(
        actor, "investigation.stop", record["url"], {"investigation": investigation_id}
    )
    return record


@router.get("", summary="Investigations, newest first")
async def list_investigations(
    limit: int = 50,
    _: Principal = Depends(require(Role.VIEWER)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    rows = await run_in_threadpool(InvestigationRepo(state.store).list, limit)
    return JSONResponse({"investigations": rows})


def _offset() -> Any:
    """The ``offset`` query parameter of a page of records (each route its own: FastAPI keeps
    the name it is first given)."""
    return Query(
        default=0, ge=0, le=MAX_PROBES, description="The first probe record of the page (0-based)."
    )


def _limit() -> Any:
    """The ``limit`` query parameter of a page of records."""
    return Query(
        default=RECORDS_PAGE,
        ge=1,
        le=MAX_RECORDS_PAGE,
        description=f"Probe records in the page: {RECORDS_PAGE} unless asked, at most "
        f"{MAX_RECORDS_PAGE} (a 50,000-probe investigation holds ~15 MB of them).",
    )


def _page_links(investigation_id: int, page: RecordsPage) -> dict[str, str]:
    """A ``Link`` header to the next page of records, as paged APIs give it."""
    if page.next_offset is None:
        return {}
    url = (
        f"/v1/investigations/{investigation_id}/records?offset={page.next_offset}"
        f"&limit={page.limit}"
    )
    return {"Link": f'<{url}>; rel="next"'}


@router.get(
    "/{investigation_id}",
    summary="An investigation: state, progress, result (and a page of its probe records)",
    description="With `records=true` the answer adds `records`, one page of the probe records "
    "in the order they were made (`records_offset`, `records_limit`), and `records_page`: "
    "`offset`, `limit`, `returned`, `total` and `next_offset` (null on the last page). Follow "
    "`next_offset` here or on `/v1/investigations/{id}/records`. Before paging, `records=true` "
    f"answered every record at once: an investigation of up to {RECORDS_PAGE} probes still "
    "comes whole.",
)
async def get_investigation(
    investigation_id: RowId,
    records: bool = Query(default=False, description="Add a page of the probe records."),
    records_offset: int = _offset(),
    records_limit: int = _limit(),
    _: Principal = Depends(require(Role.VIEWER)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    repo = InvestigationRepo(state.store)
    row = await run_in_threadpool(repo.get, investigation_id)
    if not records:
        return JSONResponse(row)
    page = await run_in_threadpool(
        repo.records_page, investigation_id, records_offset, records_limit
    )
    row["records"] = page.records
    row["records_page"] = page.as_dict()
    return JSONResponse(row, headers=_page_links(investigation_id, page))


@router.get(
    "/{investigation_id}/records",
    summary="A page of an investigation's probe records",
    description="The probe records in the order they were made, from `offset`, at most "
    f"`limit` ({RECORDS_PAGE} unless asked, up to {MAX_RECORDS_PAGE}): `records`, and "
    "`offset`, `limit`, `returned`, `total`, `next_offset` (null on the last page; the "
    "`Link` header names the next page too). A bad `offset` or `limit` is refused (422). "
    "A running investigation's records are stored every ten seconds: `total` grows.",
)
async def investigation_records(
    investigation_id: RowId,
    offset: int = _offset(),
    limit: int = _limit(),
    _: Principal = Depends(require(Role.VIEWER)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    page = await run_in_threadpool(
        InvestigationRepo(state.store).records_page, investigation_id, offset, limit
    )
    return JSONResponse(
        {"records": page.records, **page.as_dict()}, headers=_page_links(investigation_id, page)
    )


@router.get("/{investigation_id}/report", summary="An investigation's incident report")
async def investigation_report(
    investigation_id: RowId,
    format: Literal["markdown", "html", "json"] = "markdown",
    _: Principal = Depends(require(Role.VIEWER)),
    state: ServerState = Depends(server),
) -> Response:
    row = await run_in_threadpool(InvestigationRepo(state.store).get, investigation_id)
    result = row.get("result") or {}
    if row["state"] != "done":
        raise Conflict(
            f"investigation {investigation_id} is {row['state']}: its report comes when it is "
            "done" + (f" ({row['error']})" if row.get("error") else ""),
            state=row["state"],
        )
    if not result.get("diagnosis"):
        raise Conflict(
            f"investigation {investigation_id} found no incident: {result.get('summary', '')}",
            state=row["state"],
        )
    diagnosis = _incident.IncidentDiagnosis.model_validate(result["diagnosis"])
    if format == "html":
        return HTMLResponse(diagnosis.to_html())
    if format == "json":
        return JSONResponse(diagnosis.to_dict())
    return PlainTextResponse(diagnosis.to_markdown(), media_type="text/markdown")
