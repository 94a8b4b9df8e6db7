"""The agent's HTTP API: signals, findings, incidents (acknowledge, assign, notes), actions
(with undo) and approvals.

Reading needs the ``viewer`` role; acknowledging, assigning, annotating, accepting or
reopening an incident, undoing
an action and approving or rejecting need ``operator``. Every change names its actor (the
token's name) in the audit log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from mlwarden.agent.oncall import (
    MAX_ASSIGNEE_CHARS,
    MAX_NOTE_CHARS,
    accept,
    acknowledge,
    annotate,
    assign,
    oncall_of,
    reopen,
)
from mlwarden.api.deps import Principal, RowId, ServerState, as_object, json_body, require, server
from mlwarden.api.openapi import body_doc
from mlwarden.domain import MAX_ID, Role
from mlwarden.errors import InvalidInput
from mlwarden.store.approvals import ANSWER_ROLE, Approvals
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.journal import ActionJournal

router = APIRouter(tags=["agent"])


@router.get("/v1/models/{name}/signals")
async def get_signals(
    name: str,
    signal: str | None = Query(default=None, description="Only this signal."),
    limit: int = Query(default=500, ge=1, le=10_000),
    state: ServerState = Depends(server),
    _: Principal = Depends(require(Role.VIEWER)),
) -> dict[str, Any]:
    """Signal values per window, newest first."""
    rows = await run_in_threadpool(AgentRepo(state.store).signals, name, signal, limit)
    return {"model": name, "signals": rows}


@router.get("/v1/models/{name}/findings")
async def get_findings(
    name: str,
    limit: int = Query(default=200, ge=1, le=10_000),
    state: ServerState = Depends(server),
    _: Principal = Depends(require(Role.VIEWER)),
) -> dict[str, Any]:
    """Detector findings per window, newest first."""
    rows = await run_in_threadpool(AgentRepo(state.store).findings, name, limit)
    return {"model": name, "findings": rows}


@router.get("/v1/incidents")
async def list_incidents(
    model: str | None = None,
    incident_state: str | None = Query(
        default=None,
        alias="state",
        description="A state, several separated by commas, or `active` (open, acting, verifying).",
    ),
    limit: int = Query(default=100, ge=1, le=1000),
    state: ServerState = Depends(server),
    _: Principal = Depends(require(Role.VIEWER)),
) -> dict[str, Any]:
    rows = await run_in_threadpool(
        AgentRepo(state.store).list_incidents, model, incident_state, limit
    )
    return {"incidents": rows}


@router.get("/v1/incidents/{incident_id}")
async def get_incident(
    incident_id: RowId,
    state: ServerState = Depends(server),
    _: Principal = Depends(require(Role.VIEWER)),
) -> dict[str, Any]:
    """An incident with its timeline, decisions, actions and verifications, and ``oncall``:
    who acknowledged it and when, its assignee, its notes."""
    incident = await run_in_threadpool(AgentRepo(state.store).get_incident, incident_id)
    return {**incident, "oncall": oncall_of(incident)}


@router.post("/v1/incidents/{incident_id}/acknowledge")
async def acknowledge_incident(
    incident_id: RowId,
    state: ServerState = Depends(server),
    principal: Principal = Depends(require(Role.OPERATOR)),
) -> dict[str, Any]:
    """Acknowledge an open incident: you are on it. 409 when it is closed or already
    acknowledged. The agent still acts on it per its policy."""
    return await run_in_threadpool(
        lambda: acknowledge(state.store, incident_id, actor=principal.name)
    )


_REASON_DOC = body_doc(
    {
        "application/json": {
            "type": "object",
            "required": ["reason"],
            "properties": {
                "reason": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE_CHARS}
            },
        }
    }
)


@router.post("/v1/incidents/{incident_id}/accept", openapi_extra=_REASON_DOC)
async def accept_incident_drift(
    incident_id: RowId,
    body: Any = Depends(json_body),
    state: ServerState = Depends(server),
    principal: Principal = Depends(require(Role.OPERATOR)),
) -> dict[str, Any]:
    """Accept an open drift incident's drift as the new normal: ``{"reason": "..."}``. The
    agent stops working on it and it absorbs only that drift; a later failure opens its own
    incident. 409 for a quality or service incident, or one not open. Undone by ``reopen``."""
    reason = as_object(body, "acceptance").get("reason")
    return await run_in_threadpool(
        lambda: accept(state.store, incident_id, reason=reason, actor=principal.name)
    )


@router.post("/v1/incidents/{incident_id}/reopen", openapi_extra=_REASON_DOC)
async def reopen_incident_drift(
    incident_id: RowId,
    body: Any = Depends(json_body),
    state: ServerState = Depends(server),
    principal: Principal = Depends(require(Role.OPERATOR)),
) -> dict[str, Any]:
    """Undo an acceptance: ``{"reason": "..."}``; the agent works on the incident again. 409
    unless it is accepted."""
    reason = as_object(body, "reopening").get("reason")
    return await run_in_threadpool(
        lambda: reopen(state.store, incident_id, reason=reason, actor=principal.name)
    )


@router.post(
    "/v1/incidents/{incident_id}/assign",
    openapi_extra=body_doc(
        {
            "application/json": {
                "type": "object",
                "required": ["assignee"],
                "properties": {
                    "assignee": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_ASSIGNEE_CHARS,
                    }
                },
            }
        }
    ),
)
async def assign_incident(
    incident_id: RowId,
    body: Any = Depends(json_body),
    state: ServerState = Depends(server),
    principal: Principal = Depends(require(Role.OPERATOR)),
) -> dict[str, Any]:
    """Assign the incident to a person: ``{"assignee": "alice"}`` (closed incidents too)."""
    assignee = as_object(body, "assignment").get("assignee")  # checked by oncall.assign
    return await run_in_threadpool(
        lambda: assign(state.store, incident_id, assignee=assignee, actor=principal.name)
    )


@router.post(
    "/v1/incidents/{incident_id}/notes",
    openapi_extra=body_doc(
        {
            "application/json": {
                "type": "object",
                "required": ["text"],
                "properties": {
                    "text": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE_CHARS}
                },
            }
        }
    ),
)
async def add_incident_note(
    incident_id: RowId,
    body: Any = Depends(json_body),
    state: ServerState = Depends(server),
    principal: Principal = Depends(require(Role.OPERATOR)),
) -> dict[str, Any]:
    """Add a note to the incident's timeline: ``{"text": "..."}`` (closed incidents too)."""
    text = as_object(body, "note").get("text")  # checked by oncall.annotate
    return await run_in_threadpool(
        lambda: annotate(state.store, incident_id, text=text, actor=principal.name)
    )


@router.get("/v1/actions")
async def list_actions(
    model: str | None = None,
    action_state: str | None = Query(default=None, alias="state"),
    limit: int = Query(default=100, ge=1, le=1000),
    state: ServerState = Depends(server),
    _: Principal = Depends(require(Role.VIEWER)),
) -> dict[str, Any]:
    rows = await run_in_threadpool(
        lambda: ActionJournal(state.store).list(model=model, state=action_state, limit=limit)
    )
    return {"actions": rows}


@router.post("/v1/actions/{action_id}/undo")
async def undo(
    action_id: RowId,
    force: bool = False,
    state: ServerState = Depends(server),
    principal: Principal = Depends(require(Role.OPERATOR)),
) -> dict[str, Any]:
    """Undo a done action: its model's deployment goes back to the revision before it."""

    # with the server's configured policy; the gateway routes by the restored revision at once
    ops = state.operations(principal.name)
    return dict(await run_in_threadpool(lambda: ops.undo_action(action_id, force=force)))


@router.get("/v1/approvals")
async def list_approvals(
    approval_state: str | None = Query(default=None, alias="state"),
    model: str | None = None,
    state: ServerState = Depends(server),
    _: Principal = Depends(require(Role.VIEWER)),
) -> dict[str, Any]:
    rows = await run_in_threadpool(Approvals(state.store).list, approval_state, model)
    return {"approvals": rows}


async def _answer(
    state: ServerState, principal: Principal, approval_id: int, body: dict[str, Any]
) -> dict[str, Any]:
    # the queue's rules (the decision, a reason, the role, expiry) are the store's
    # (``store.approvals``); recorded only: the agent runs an approved action on its next pass
    ops = state.operations(principal.name)
    decision, reason = body.get("decision"), body.get("reason")
    row = await run_in_threadpool(
        lambda: ops.answer(approval_id, decision, role=principal.role, reason=reason)
    )
    return dict(row)


_ANSWER = {
    "decision": {"type": "string", "enum": ["approve", "reject"]},
    "reason": {"type": "string", "minLength": 1, "description": "Why (audited)."},
}


@router.post(
    "/v1/approvals",
    openapi_extra=body_doc(
        {
            "application/json": {
                "type": "object",
                "required": ["id", "decision", "reason"],
                "properties": {
                    "id": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
                    **_ANSWER,
                },
            }
        }
    ),
)
async def answer_approval(
    body: Any = Depends(json_body),
    state: ServerState = Depends(server),
    principal: Principal = Depends(require(ANSWER_ROLE)),
) -> dict[str, Any]:
    """Approve or reject: ``{"id": 3, "decision": "approve"|"reject", "reason": "..."}``."""
    data = as_object(body, "approval answer")
    approval_id = data.get("id")
    if (
        not isinstance(approval_id, int)
        or isinstance(approval_id, bool)
        or not (0 <= approval_id <= MAX_ID)
    ):
        raise InvalidInput("'id' must be the integer id of an approval")
    return await _answer(state, principal, approval_id, data)


@router.post(
    "/v1/approvals/{approval_id}",
    openapi_extra=body_doc(
        {
            "application/json": {
                "type": "object",
                "required": ["decision", "reason"],
                "properties": _ANSWER,
            }
        }
    ),
)
async def answer_approval_by_id(
    approval_id: RowId,
    body: Any = Depends(json_body),
    state: ServerState = Depends(server),
    principal: Principal = Depends(require(ANSWER_ROLE)),
) -> dict[str, Any]:
    """Approve or reject one approval: ``{"decision": "approve"|"reject", "reason": "..."}``."""
    return await _answer(state, principal, approval_id, as_object(body, "approval answer"))
