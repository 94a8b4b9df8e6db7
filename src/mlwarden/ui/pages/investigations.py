"""Investigations of a model by its URL in the dashboard: the list with the form that starts one
(the URL, a sample file, the response field mapping; operators, with the session's CSRF token),
an investigation's page (its progress while it runs, updated live; then its baseline, the
windows and their findings, the diagnosis with the playbooks' checks, the recommendations and
the report to download), and the small JSON both pages poll.

The form starts the job exactly as ``POST /v1/investigations`` does
(:func:`mlwarden.api.routes_investigations.start`: same checks, same audit entry); the sample
file is read as ``mlwarden investigate --sample FILE`` reads one
(:func:`mlwarden.agent.investigate.rows_from_file`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from mlwarden.api.deps import ServerState, server
from mlwarden.errors import Conflict, InvalidInput, MlwardenError, NotFound
from mlwarden.store.investigations import (
    FINISHED,
    MAX_RECORDS_PAGE,
    RECORDS_PAGE,
    InvestigationRepo,
)
from mlwarden.ui.session import Session
from mlwarden.ui.web import (
    PREFIX,
    api_session,
    back,
    compressed,
    error_page,
    operator_change,
    page_router,
    page_session,
    render,
)

router = page_router()

LISTED = 100  # investigations on the list page, newest first
# the response field mapping's fields, as the form names them (``map_<field>``)
MAPPING_FIELDS = ("predictions", "prediction", "confidence", "probabilities")
# the form's probing settings with their defaults (those of ``POST /v1/investigations``)
SIZES = {"baseline": 200, "windows": 3, "window_size": 100, "rate_per_s": 50.0, "timeout_ms": 2000}
# a window's signals shown in the findings timeline, by what a person calls them
WINDOW_SIGNALS = (
    ("score_mean", "confidence"),
    ("accuracy", "accuracy"),
    ("error_rate", "failed calls"),
    ("latency_p99_ms", "p99 latency (ms)"),
)


# ---------------------------------------------------------------------------- the list


def _list_rows(state: ServerState) -> list[dict[str, Any]]:
    return InvestigationRepo(state.store).list(LISTED)


@router.get("/investigations", response_class=HTMLResponse)
def investigations_page(
    request: Request,
    msg: str = "",
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    return _list_page(request, session, state, msg=msg)


def _list_page(
    request: Request,
    session: Session,
    state: ServerState,
    *,
    msg: str = "",
    error: str = "",
    form: dict[str, Any] | None = None,
    http_status: int = 200,
) -> Response:
    return render(
        request,
        session,
        "investigations.html",
        http_status=http_status,
        msg=msg,
        error=error,
        investigations=_list_rows(state),
        form=form or {"protocol": "json", **SIZES},
        mapping_fields=MAPPING_FIELDS,
        runs_here=state.investigations is not None,
        finished=FINISHED,
    )


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def _sample_rows(upload: UploadFile) -> list[dict[str, Any]]:
    """The rows of an uploaded sample file, read by its suffix as ``--sample FILE`` is."""
    from mlwarden.agent.investigate import rows_from_file

    suffix = Path(upload.filename or "").suffix.lower()
    content = await upload.read()
    with tempfile.TemporaryDirectory(prefix="mlw-sample-") as folder:
        path = Path(folder) / f"sample{suffix}"
        path.write_bytes(content)
        try:
            return await run_in_threadpool(rows_from_file, path)
        except InvalidInput as exc:  # name the user's file, not our temporary copy
            raise InvalidInput(
                exc.message.replace(str(path), repr(upload.filename)), **exc.detail
            ) from None


@router.post("/investigations", response_class=HTMLResponse)
async def start_investigation(
    request: Request,
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    """The form: start an investigation (operators), then show its page."""
    from mlwarden.api.routes_investigations import start

    form = await request.form()
    operator_change(request, session, _text(form, "csrf"))
    shown: dict[str, Any] = {
        name: _text(form, name) for name in ("url", "target", "protocol", "remote_name", *SIZES)
    }
    shown.update({f"map_{name}": _text(form, f"map_{name}") for name in MAPPING_FIELDS})
    values: dict[str, Any] = {"url": shown["url"], "protocol": shown["protocol"] or "json"}
    for name in ("target", "remote_name", *SIZES):
        if shown[name]:
            values[name] = shown[name]
    mapping = {name: shown[f"map_{name}"] for name in MAPPING_FIELDS if shown[f"map_{name}"]}
    if mapping:
        values["response"] = mapping
    try:
        upload = form.get("sample")
        if isinstance(upload, UploadFile) and upload.filename:
            values["rows"] = await _sample_rows(upload)
        record = await run_in_threadpool(start, state, values, session.name)
    except MlwardenError as exc:
        return _list_page(
            request, session, state, error=exc.message, form=shown, http_status=exc.status_code
        )
    return back(
        request,
        f"{PREFIX}/investigations/{record['id']}",
        f"Investigation #{record['id']} started: {record['params']['total_probes']} probes.",
    )


@router.get("/live/investigations")
def live_investigations(
    request: Request,
    session: Session = Depends(api_session),
    state: ServerState = Depends(server),
) -> Response:
    """What the list refreshes: each investigation's state, progress and brief."""
    rows = [
        {
            "id": row["id"],
            "state": row["state"],
            "progress": row["progress"],
            "brief": row["brief"],
            "error": row["error"],
        }
        for row in _list_rows(state)
    ]
    return compressed(
        request, JSONResponse({"investigations": rows}, headers={"Cache-Control": "no-store"})
    )


# ---------------------------------------------------------------------------- one investigation


def investigation_view(state: ServerState, investigation_id: int) -> dict[str, Any]:
    """The investigation page's context: the stored record, its diagnosis as the incident
    pages show one, and the windows' timeline with the signals a person reads."""
    from mlwarden.diagnose.incident import IncidentDiagnosis

    row = InvestigationRepo(state.store).get(investigation_id)
    result = row.get("result") or {}
    diagnosis = (
        IncidentDiagnosis.model_validate(result["diagnosis"]) if result.get("diagnosis") else None
    )
    windows = [
        {
            **w,
            "shown": [
                (label, w["signals"].get(name))
                for name, label in WINDOW_SIGNALS
                if name in (w.get("signals") or {})
            ],
        }
        for w in result.get("windows") or []
    ]
    outputs = (result.get("baseline") or {}).get("outputs") or {}
    return {
        "inv": row,
        "result": result,
        # the classes the model answered in its baseline, and how often
        "baseline_shares": [
            (name.split("_share.", 1)[1], value)
            for name, value in outputs.items()
            if name.startswith("prediction_share.") and value is not None
        ],
        "diagnosis": diagnosis,
        "windows": windows,
        "finished": row["state"] in FINISHED,
        "has_report": row["state"] == "done" and diagnosis is not None,
    }


@router.post("/investigations/{investigation_id}/stop", response_class=HTMLResponse)
async def stop_investigation(
    request: Request,
    investigation_id: int,
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    """The Stop button (operators): the investigation ends between two probes."""
    from mlwarden.api.routes_investigations import stop

    form = await request.form()
    operator_change(request, session, _text(form, "csrf"))
    try:
        await run_in_threadpool(stop, state, investigation_id, session.name)
    except MlwardenError as exc:
        return error_page(request, session, exc)
    return back(
        request,
        f"{PREFIX}/investigations/{investigation_id}",
        f"Investigation #{investigation_id} is stopping: what it collected is kept.",
    )


@router.get("/investigations/{investigation_id}", response_class=HTMLResponse)
def investigation_page(
    request: Request,
    investigation_id: int,
    msg: str = "",
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    try:
        context = investigation_view(state, investigation_id)
    except NotFound as exc:
        return error_page(request, session, exc)
    return render(request, session, "investigation.html", msg=msg, **context)


@router.get("/live/investigations/{investigation_id}")
def live_investigation(
    request: Request,
    investigation_id: int,
    session: Session = Depends(api_session),
    state: ServerState = Depends(server),
) -> Response:
    """What a running investigation's page refreshes: state, progress, the windows judged so
    far with their findings (the page reloads itself for the rest once it has ended)."""
    row = InvestigationRepo(state.store).get(investigation_id)
    result = row.get("result") or {}
    windows = [
        {
            "window": w["window"],
            "n": w["n"],
            "errors": w["errors"],
            "findings": [
                {"kind": f["kind"], "message": f["message"]} for f in w.get("findings") or []
            ],
        }
        for w in result.get("windows") or []
    ]
    body = {
        "state": row["state"],
        "finished": row["state"] in FINISHED,
        "progress": row["progress"],
        "error": row["error"],
        "windows": windows,
        "baseline": result.get("baseline"),
    }
    return compressed(request, JSONResponse(body, headers={"Cache-Control": "no-store"}))


@router.get("/investigations/{investigation_id}/report.{fmt}")
def investigation_report(
    investigation_id: int,
    fmt: str,
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    """The investigation's incident report as a file: Markdown, HTML or JSON."""
    if fmt not in ("md", "html", "json"):
        raise InvalidInput(f"report format must be md, html or json, not {fmt!r}")
    context = investigation_view(state, investigation_id)
    diagnosis = context["diagnosis"]
    if not context["has_report"] or diagnosis is None:
        inv = context["inv"]
        reason = inv.get("error") or context["result"].get("summary") or inv["state"]
        raise Conflict(f"investigation {investigation_id} has no report: {reason}")
    headers = {
        "Content-Disposition": f'attachment; filename="investigation-{investigation_id}.{fmt}"'
    }
    if fmt == "md":
        return PlainTextResponse(
            diagnosis.to_markdown(), media_type="text/markdown", headers=headers
        )
    if fmt == "html":
        return HTMLResponse(diagnosis.to_html(), headers=headers)
    return JSONResponse(diagnosis.to_dict(), headers=headers)


@router.get("/investigations/{investigation_id}/records.json")
def investigation_records(
    request: Request,
    investigation_id: int,
    offset: int = Query(default=0, ge=0),
    limit: int = Query(default=RECORDS_PAGE, ge=1, le=MAX_RECORDS_PAGE),
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    """A page of the investigation's probe records as a file, as
    ``GET /v1/investigations/{id}/records`` answers it (for a browser's session)."""
    page = InvestigationRepo(state.store).records_page(investigation_id, offset, limit)
    headers = {
        "Content-Disposition": f'attachment; filename="investigation-{investigation_id}-'
        f'records-{offset}.json"',
        "Cache-Control": "no-store",
    }
    return compressed(
        request, JSONResponse({"records": page.records, **page.as_dict()}, headers=headers)
    )
