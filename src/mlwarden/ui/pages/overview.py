"""The fleet overview and the live counts every page's navigation bar polls."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    Response,
)

from mlwarden.api.deps import ServerState, server
from mlwarden.ui import queries
from mlwarden.ui.session import (
    Session,
)
from mlwarden.ui.web import api_session, page_router, page_session, render

router = page_router()


def _filtered(rows: list[queries.ModelRow], status: str, q: str) -> list[queries.ModelRow]:
    q = q.strip().lower()
    return [
        r for r in rows if (not status or r.status == status) and (not q or q in r.name.lower())
    ]


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request,
    status: str = "",
    q: str = "",
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    rows = queries.fleet(state.store.engine)
    counts = {key: sum(r.status == key for r in rows) for key in queries.HEALTH_LABELS}
    return render(
        request,
        session,
        "overview.html",
        rows=_filtered(rows, status, q),
        total=len(rows),
        counts=counts,
        status=status,
        q=q,
    )


@router.get("/live/overview")
def live_overview(
    status: str = "",
    q: str = "",
    session: Session = Depends(api_session),
    state: ServerState = Depends(server),
) -> JSONResponse:
    rows = _filtered(queries.fleet(state.store.engine), status, q)
    return JSONResponse(
        {
            "models": [r.public() for r in rows],
            "pending_approvals": len(queries.waiting_approvals(state.store.engine)),
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/live/counts")
def live_counts(
    session: Session = Depends(api_session), state: ServerState = Depends(server)
) -> JSONResponse:
    """What the navigation bar shows on every page: approvals waiting."""
    return JSONResponse(
        {"pending_approvals": len(queries.waiting_approvals(state.store.engine))},
        headers={"Cache-Control": "no-store"},
    )
