"""The hash-chained audit log, filtered."""

from __future__ import annotations

from datetime import datetime

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response

from mlwarden.api.deps import ServerState, server
from mlwarden.errors import InvalidInput
from mlwarden.store import dashboard
from mlwarden.ui.session import Session
from mlwarden.ui.web import error_page, page_router, page_session, render

router = page_router()


def _parse_time(value: str, what: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{what} must be a date or time like 2026-11-27T10:00, not {value!r}"
        ) from None
    from mlwarden.clock import as_utc

    return as_utc(parsed)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    model: str = "",
    actor: str = "",
    kind: str = "",
    since: str = "",
    until: str = "",
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    try:
        entries = dashboard.audit_page(
            state.store,
            model=model or None,
            actor=actor or None,
            kind=kind or None,
            since=_parse_time(since, "since"),
            until=_parse_time(until, "until"),
        )
    except InvalidInput as exc:
        return error_page(request, session, exc)
    ok, bad = state.store.verify_audit()
    return render(
        request,
        session,
        "audit.html",
        entries=entries,
        chain_ok=ok,
        chain_bad=bad,
        filters={"model": model, "actor": actor, "kind": kind, "since": since, "until": until},
    )
