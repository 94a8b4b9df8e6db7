"""The fleet overview and the live counts every page's navigation bar polls."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mlwarden.api.deps import ServerState, server
from mlwarden.store import dashboard
from mlwarden.ui import queries
from mlwarden.ui.session import Session
from mlwarden.ui.web import api_session, compressed, page_router, page_session, render, sparkline

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
    rows = queries.fleet(state.store)
    counts = queries.health_counts(rows)
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
    request: Request,
    status: str = "",
    q: str = "",
    session: Session = Depends(api_session),
    state: ServerState = Depends(server),
) -> Response:
    every = queries.fleet(state.store)
    models = []
    for row in _filtered(every, status, q):
        shown = row.public()
        # the same server-drawn SVG as the page's, so the trend moves with the numbers
        shown["spark_performance"] = sparkline(row.series.get(row.performance_name or ""))
        shown["spark_latency"] = sparkline(row.series.get(queries.LATENCY_SIGNAL))
        models.append(shown)
    body = {
        "models": models,
        "counts": queries.health_counts(every),
        "pending_approvals": len(dashboard.waiting_approvals(state.store)),
    }
    return compressed(request, JSONResponse(body, headers={"Cache-Control": "no-store"}))


@router.get("/live/counts")
def live_counts(
    session: Session = Depends(api_session), state: ServerState = Depends(server)
) -> JSONResponse:
    """What the navigation bar shows on every page: approvals waiting."""
    return JSONResponse(
        {"pending_approvals": len(dashboard.waiting_approvals(state.store))},
        headers={"Cache-Control": "no-store"},
    )
