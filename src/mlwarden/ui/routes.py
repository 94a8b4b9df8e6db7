"""The dashboard: server-rendered pages under ``/ui``, small JSON endpoints for live updates,
our own static files and Plotly.js (from the installed ``plotly`` package) compressed under
versioned URLs (:mod:`mlwarden.ui.assets`).

``mount_ui(app)`` is the one call the application makes. What the pages share (sessions, CSRF,
roles, rendering) is in :mod:`mlwarden.ui.web`; each page is a module of
:mod:`mlwarden.ui.pages`.

The server mounts it with ``on_first_use=True``: the redirect of ``/`` and the sign-in handler
at once, the pages (their modules, the templates, the dashboard's queries: about 3 MB of a
server that only serves predictions, docs/benchmarks.md, "Gateway overhead") at the first
request under ``/ui``, which then finds them as if they had been there from the start.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mlwarden.ui.session import PREFIX, SignInRequired

__all__ = ["mount_ui"]


def mount_ui(app: FastAPI, *, on_first_use: bool = False) -> None:
    """Add the dashboard to ``app``: pages, live JSON and static assets under ``/ui``, and the
    sign-in redirect for pages opened without a session; the pages at the first request under
    ``/ui`` when ``on_first_use`` (before ``app`` serves its first request). Idempotent."""
    if getattr(app.state, "ui_mounted", False):
        return
    app.state.ui_mounted = True

    @app.get("/", include_in_schema=False)
    async def _root() -> RedirectResponse:
        # a person opening the server's address wants the dashboard, not a JSON 404
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    # registered now, whenever the pages come: the app's exception handlers are fixed at its
    # first request
    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"{PREFIX}/login?next={quote(exc.next_url)}", status_code=303)

    if on_first_use:
        app.add_middleware(_PagesOnFirstUse)
    else:
        _include_pages(app)


def _include_pages(app: FastAPI) -> None:
    if getattr(app.state, "ui_pages", False):
        return
    app.state.ui_pages = True
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

    for module in (
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
    ):
        app.include_router(module.router)


class _PagesOnFirstUse:
    """Includes the dashboard's pages in the app at the first request under ``/ui``, before
    the app routes it (one thread, the event loop's: no request can see half of them)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.included = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.included and scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.startswith(PREFIX):
                _include_pages(scope["app"])
                self.included = True
        await self.app(scope, receive, send)
