"""The incident list, an incident's page with its diagnosis and on-call state (acknowledge,
assign, notes), and its report for download."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from mlwarden.api.deps import ServerState, server
from mlwarden.domain import IncidentState
from mlwarden.errors import Conflict, InvalidInput, NotFound
from mlwarden.ui.explain import readable_timeline
from mlwarden.ui.session import Session
from mlwarden.ui.web import (
    PREFIX,
    api_session,
    back,
    error_page,
    jsonable,
    operator_change,
    page_router,
    page_session,
    render,
)

if TYPE_CHECKING:
    from mlwarden.diagnose.incident import IncidentDiagnosis
    from mlwarden.store import Store

router = page_router()

RECORDS_SHOWN = 5  # the incident's newest records listed on its page, each explained on its own


@router.get("/incidents", response_class=HTMLResponse)
def incidents_page(
    request: Request,
    model: str = "",
    state_filter: str = "",
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    from mlwarden.agent.oncall import oncall_of
    from mlwarden.store.incidents import OPEN_STATES, AgentRepo

    try:
        rows = AgentRepo(state.store).list_incidents(
            model=model or None, state=state_filter or None, limit=200
        )
    except (NotFound, InvalidInput) as exc:
        return error_page(request, session, exc)
    shown = [{**row, "oncall": oncall_of(row)} for row in rows]
    return render(
        request,
        session,
        "incidents.html",
        incidents=shown,
        model=model,
        state_filter=state_filter,
        models=state.store.model_names(),
        open_states=OPEN_STATES,
    )


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(
    request: Request,
    incident_id: int,
    msg: str = "",
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    try:
        context = incident_view(state, incident_id)
    except NotFound as exc:
        return error_page(request, session, exc)
    return render(request, session, "incident.html", msg=msg, **context)


def incident_view(state: ServerState, incident_id: int, fresh: bool = False) -> dict[str, Any]:
    """The incident page's context; the diagnosis comes from the server's
    :class:`~mlwarden.ui.report_cache.IncidentDiagnoses` once made. Unless ``fresh`` (a report
    to download), a diagnosis still being made for the newest window is not waited for beyond
    a moment: the one of the window before is shown, and ``diagnosis_as_of`` names its window."""
    from mlwarden.agent.acceptance import ACCEPTABLE
    from mlwarden.agent.oncall import MAX_ASSIGNEE_CHARS, MAX_NOTE_CHARS, oncall_of
    from mlwarden.agent.reports import incident_context
    from mlwarden.store.incidents import CLOSED_STATES
    from mlwarden.ui.report_cache import server_diagnoses

    diagnoses = server_diagnoses(state)
    as_of: list[int | None] = [None]

    def diagnose_for_page(
        store: Store, incident: Mapping[str, Any], findings: list[dict[str, Any]], model_id: int
    ) -> IncidentDiagnosis:
        diagnosis, as_of[0] = diagnoses.for_page(store, incident, findings, model_id)
        return diagnosis

    context = incident_context(
        state.store, incident_id, diagnose=diagnoses if fresh else diagnose_for_page
    )
    context["diagnosis_as_of"] = as_of[0]
    incident = context["incident"]
    # a few of its records, each linked to its explanation (the record page)
    closed_at = incident.get("closed_at")
    records = state.store.fetch_records(
        incident["model"],
        until=None if closed_at is None else closed_at + timedelta(microseconds=1),
        limit=RECORDS_SHOWN,
        newest_first=True,
        answers_only=True,
    )
    return {
        **context,
        "timeline": readable_timeline(incident["timeline"] or [], incident["decisions"]),
        "oncall": oncall_of(incident),
        "records": records,
        "closed": incident["state"] in CLOSED_STATES,
        # drift, or a drop on drifting inputs, an operator may accept as the new normal
        "acceptable": incident["state"] is IncidentState.OPEN
        and incident.get("scope") in {s.value for s in ACCEPTABLE},
        "max_note_chars": MAX_NOTE_CHARS,
        "max_assignee_chars": MAX_ASSIGNEE_CHARS,
    }


@router.post("/incidents/{incident_id}/{change}")
def change_incident(
    request: Request,
    incident_id: int,
    change: str,
    csrf: str = Form(""),
    assignee: str = Form(""),
    text: str = Form(""),
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    """The incident page's forms: ``acknowledge``, ``assign`` (``assignee``), ``notes``
    (``text``), ``accept`` and ``reopen`` (the reason in ``text``); operators only, with the
    session's CSRF token."""
    from mlwarden.agent.oncall import accept, acknowledge, annotate, assign, reopen

    operator_change(request, session, csrf)
    try:
        if change == "acknowledge":
            acknowledge(state.store, incident_id, actor=session.name)
            message = f"Acknowledged by {session.name}. The agent still acts per its policy."
        elif change == "assign":
            oncall = assign(state.store, incident_id, assignee=assignee, actor=session.name)
            message = f"Assigned to {oncall['assignee']['name']}."
        elif change == "notes":
            annotate(state.store, incident_id, text=text, actor=session.name)
            message = "Note added."
        elif change == "accept":
            accept(state.store, incident_id, reason=text, actor=session.name)
            message = "Drift accepted: the agent no longer works on it; it absorbs only this drift."
        elif change == "reopen":
            reopen(state.store, incident_id, reason=text, actor=session.name)
            message = "Reopened: the agent works on this incident again."
        else:
            raise NotFound(
                f"no such change {change!r}: use acknowledge, assign, notes, accept or reopen"
            )
    except (Conflict, InvalidInput, NotFound) as exc:
        return error_page(request, session, exc)
    return back(request, f"{PREFIX}/incidents/{incident_id}", message)


@router.get("/live/incidents/{incident_id}")
def live_incident(
    incident_id: int, session: Session = Depends(api_session), state: ServerState = Depends(server)
) -> JSONResponse:
    from mlwarden.agent.oncall import oncall_of
    from mlwarden.store.incidents import AgentRepo
    from mlwarden.ui.report_cache import server_diagnoses

    incident = AgentRepo(state.store).get_incident(incident_id)
    return JSONResponse(
        {
            # whether the diagnosis of the incident's present state is made (a page showing the
            # one of the window before says when it can be reloaded)
            "diagnosis_current": server_diagnoses(state).is_current(state.store, incident),
            "state": incident["state"],
            "severity": incident["severity"],
            "actions": [{"id": a["id"], "state": a["state"]} for a in incident["actions"]],
            "verifications": [v["verdict"] for v in incident["verifications"]],
            "timeline": len(incident["timeline"] or []),
            "timeline_entries": jsonable(
                readable_timeline(incident["timeline"] or [], incident["decisions"])
            ),
            "first_window": incident["first_window"],
            "last_window": incident["last_window"],
            "oncall": jsonable(oncall_of(incident)),
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/incidents/{incident_id}/report.{fmt}")
def incident_report(
    incident_id: int,
    fmt: str,
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    if fmt not in ("md", "html", "json"):
        raise InvalidInput(f"report format must be md, html or json, not {fmt!r}")
    context = incident_view(state, incident_id, fresh=True)
    diagnosis = context["diagnosis"]
    if diagnosis is None:
        raise Conflict(f"incident {incident_id} cannot be diagnosed: {context['diagnosis_error']}")
    filename = f"incident-{incident_id}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "md":
        return PlainTextResponse(
            diagnosis.to_markdown(), media_type="text/markdown", headers=headers
        )
    if fmt == "html":
        return HTMLResponse(diagnosis.to_html(), headers=headers)
    body = {"incident": jsonable(context["incident"]), "diagnosis": diagnosis.to_dict()}
    return JSONResponse(body, headers=headers)
