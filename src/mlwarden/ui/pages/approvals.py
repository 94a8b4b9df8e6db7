"""The approval queue: remedies the agent asks a person to approve or reject."""

from __future__ import annotations

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from mlwarden.api.deps import ServerState, server
from mlwarden.domain import ApprovalState
from mlwarden.errors import Conflict, InvalidInput, NotFound
from mlwarden.store import dashboard
from mlwarden.store.approvals import Answer
from mlwarden.ui.session import Session
from mlwarden.ui.web import (
    PREFIX,
    back,
    error_page,
    operator_change,
    page_router,
    page_session,
    render,
)

router = page_router()


@router.get("/approvals", response_class=HTMLResponse)
def approvals_page(
    request: Request,
    msg: str = "",
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    from mlwarden.store.approvals import Approvals
    from mlwarden.store.incidents import AgentRepo

    approvals = Approvals(state.store)
    repo = AgentRepo(state.store)
    # list() first marks overdue requests expired: they show as decided, not as waiting
    decided = [a for a in approvals.list() if a["state"] is not ApprovalState.PENDING][:50]
    waiting = [approvals.get(i) for i in dashboard.waiting_approvals(state.store)]
    pending = [
        {
            **item,
            "decision": (
                repo.get_decision(item["decision_id"]) if item["decision_id"] is not None else None
            ),
        }
        for item in waiting
    ]
    return render(
        request,
        session,
        "approvals.html",
        pending=pending,
        decided=decided,
        msg=msg,
        pending_approvals=len(pending),  # the badge counts the very list the page shows
    )


@router.post("/approvals/{approval_id}/{verdict}")
def decide_approval(
    request: Request,
    approval_id: int,
    verdict: str,
    reason: str = Form(""),
    csrf: str = Form(""),
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    operator_change(request, session, csrf)
    try:
        message = _decide(state, approval_id, verdict, session, reason)
    except (Conflict, InvalidInput, NotFound) as exc:
        return error_page(request, session, exc)
    return back(request, f"{PREFIX}/approvals", message)


def _decide(
    state: ServerState,
    approval_id: int,
    verdict: str,
    session: Session,
    reason: str,
) -> str:
    ops = state.operations(session.name)  # the same service as POST /v1/approvals
    try:
        answer = Answer.parse(verdict)
    except InvalidInput:  # a path that names no verdict: no such page
        raise NotFound(f"no such verdict {verdict!r}: use approve or reject") from None
    if answer is Answer.APPROVE:
        # the approval is recorded and its action journaled; the agent runs it once, on its
        # next pass, with the configured policy (never inside this request, never twice)
        approved = ops.approve(approval_id, role=session.role, reason=reason)
        return (
            f"Approved: {approved['action']} on {approved['model']} is journaled as action "
            f"{approved['action_id']}; the agent runs it on its next pass."
        )
    rejected = ops.reject(approval_id, role=session.role, reason=reason)
    return f"Rejected: {rejected['action']} on {rejected['model']}."
