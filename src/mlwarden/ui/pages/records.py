"""One recorded prediction and why the model said it: each feature's contribution against the
reference point (:mod:`mlwarden.serving.explain`, as ``POST /v1/models/{name}/explain``), the
incident's culprit features marked when the page is opened from an incident."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from mlwarden.api.deps import ServerState, server
from mlwarden.errors import MlwardenError, NotFound
from mlwarden.ui.session import Session
from mlwarden.ui.web import error_page, page_router, page_session, render

router = page_router()
log = logging.getLogger(__name__)


@router.get("/models/{name}/records/{record_id}", response_class=HTMLResponse)
async def record_page(
    request: Request,
    name: str,
    record_id: str,
    incident: int | None = None,
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    from mlwarden.api.routes_explain import reference_rows
    from mlwarden.store.incidents import AgentRepo

    try:
        record = await run_in_threadpool(state.store.get_record, name, record_id)
        culprits: list[str] = []
        if incident is not None:
            found = await run_in_threadpool(AgentRepo(state.store).get_incident, incident)
            culprits = list(found.get("features") or [])
    except NotFound as exc:
        return error_page(request, session, exc)
    explanation: dict[str, Any] | None = None
    why_not = None
    if record.get("version") is None or not isinstance(record.get("features"), dict):
        why_not = "no version answered this request, so there is no answer to explain"
    else:
        try:
            rows = await run_in_threadpool(reference_rows, state, name, record["version"])
            explanation = await state.gateway.explain(
                name, record["features"], rows, version=record["version"]
            )
        except MlwardenError as exc:  # the version was deleted, its endpoint is down...
            why_not = exc.message
        except Exception as exc:  # the page still shows the record
            log.exception("explaining record %s of %s failed", record_id, name)
            why_not = f"{type(exc).__name__}: {exc}"
    largest = max(
        (abs(c["contribution"]) for c in (explanation or {}).get("contributions", [])), default=0.0
    )
    return render(
        request,
        session,
        "record.html",
        name=name,
        record=record,
        explanation=explanation,
        why_not=why_not,
        largest=largest or 1.0,
        culprits=culprits,
        incident=incident,
    )
