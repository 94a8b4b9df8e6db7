"""The dashboard: server-rendered pages under ``/ui``, small JSON endpoints for live updates,
our own static files and Plotly.js (from the installed ``plotly`` package) compressed under
versioned URLs (:mod:`mlwarden.ui.assets`).

``mount_ui(app)`` is the one call the application makes. What the pages share (sessions, CSRF,
roles, rendering) is in :mod:`mlwarden.ui.web`; each page is a module of
:mod:`mlwarden.ui.pages`.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from mlwarden.ui.pages import (
    approvals,
    assets,
    assistant,
    audit,
    auth,
    diagnose,
    incidents,
    investigations,
    models,
    overview,
    policy,
    records,
)
from mlwarden.ui.web import PREFIX, SignInRequired

__all__ = ["mount_ui"]

PAGE_MODULES = (
    assets,
    auth,
    overview,
    models,
    incidents,
    records,
    approvals,
    audit,
    policy,
    diagnose,
    investigations,
    assistant,
)


def mount_ui(app: FastAPI) -> None:
    """Add the dashboard to ``app``: pages, live JSON and static assets under ``/ui``, and the
    sign-in redirect for pages opened without a session. Idempotent."""
    if getattr(app.state, "ui_mounted", False):
        return
    app.state.ui_mounted = True
    for module in PAGE_MODULES:
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    async def _root() -> RedirectResponse:
        # a person opening the server's address wants the dashboard, not a JSON 404
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"{PREFIX}/login?next={quote(exc.next_url)}", status_code=303)
