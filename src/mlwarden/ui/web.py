"""What every dashboard page shares: the router prefix, the templates and their filters, the
browser session of a request (sign-in redirect for pages, 401 for live JSON), the CSRF and role
checks of forms, and rendering.

Pages need a browser session (sign in with an API token at ``/ui/login``); when the server runs
without auth (loopback only) the browser is the local admin. Every POST checks the session's
CSRF token. Viewers see and read everything; operators also approve, reject, undo, switch
monitoring and acknowledge, assign and annotate incidents, and the same checks are made on the
server whatever the page showed.
"""

from __future__ import annotations

import gzip
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from mlwarden.agent.journal import progress_of
from mlwarden.api.deps import LOCAL_ACTOR, ServerState, Unauthorized, server
from mlwarden.domain import Role
from mlwarden.errors import Forbidden, MlwardenError
from mlwarden.store import dashboard
from mlwarden.ui import queries
from mlwarden.ui.assets import asset_url
from mlwarden.ui.explain import explain_decision
from mlwarden.ui.session import (
    PREFIX,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    Session,
    SessionTable,
    Signer,
    SignInRequired,
    load_secret,
)

HERE = Path(__file__).parent

templates = Jinja2Templates(directory=str(HERE / "templates"))


def page_router() -> APIRouter:
    """The router of one page module: under ``/ui``, out of the OpenAPI document."""
    return APIRouter(prefix=PREFIX, include_in_schema=False)


# ---------------------------------------------------------------------------- template helpers

NO_VALUE = "\u2013"  # an en dash: "no value" in tables


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return NO_VALUE
    if isinstance(value, float):
        if not math.isfinite(value):
            return NO_VALUE
        return f"{value:.{digits}g}"
    return str(value)


def _when(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return NO_VALUE


# Drawn sparklines by the identity of their series, which ``queries.fleet`` keeps (and never
# changes) until the model's next window: at 1,000 models, drawing 2,000 of them was most of
# the overview's render (docs/benchmarks.md, "A fleet"). Each entry holds its series, so no
# other list can take its id.
_SPARKS: dict[tuple[int, int, int], tuple[list[float | None], str]] = {}


def sparkline(values: list[float | None] | None, width: int = 120, height: int = 28) -> str:
    """An inline SVG polyline (server-side: no script needed for 20 rows of sparklines)."""
    if values is None:
        return ""
    key = (id(values), width, height)
    held = _SPARKS.get(key)
    if held is not None and held[0] is values:
        return held[1]
    if len(_SPARKS) >= 10_000:
        _SPARKS.clear()
    drawn = _sparkline(values, width, height)
    _SPARKS[key] = (values, drawn)
    return drawn


def _sparkline(values: list[float | None], width: int, height: int) -> str:
    points = [(k, v) for k, v in enumerate(values or []) if v is not None]
    if len(points) < 2:
        return ""
    lo = min(v for _, v in points)
    hi = max(v for _, v in points)
    span = hi - lo or 1.0
    n = max(len(values or []) - 1, 1)
    coords = " ".join(
        f"{k * width / n:.1f},{height - 2 - (v - lo) * (height - 4) / span:.1f}" for k, v in points
    )
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="trend from {lo:.3g} to {hi:.3g}">'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{coords}"/></svg>'
    )


templates.env.filters["fmt"] = _fmt
templates.env.filters["when"] = _when
templates.env.filters["tojson_compact"] = lambda v: json.dumps(v, separators=(",", ":"))
templates.env.globals["sparkline"] = sparkline
templates.env.globals["asset_url"] = asset_url
templates.env.globals["progress_of"] = progress_of
templates.env.globals["explain_decision"] = explain_decision
templates.env.globals["HEALTH_LABELS"] = queries.HEALTH_LABELS
STATUS_ICONS = {"healthy": "✓", "degraded": "!", "failing": "✕", "disabled": "‖", "unknown": "?"}
templates.env.globals["STATUS_ICONS"] = STATUS_ICONS


# ---------------------------------------------------------------------------- sessions


def signer_of(state: ServerState) -> Signer:
    signer: Signer | None = getattr(state, "_ui_signer", None)
    if signer is None:
        signer = Signer(load_secret(state.settings.data_dir))
        state._ui_signer = signer  # type: ignore[attr-defined]
    return signer


def _session_of(request: Request, state: ServerState) -> Session | None:
    signer = signer_of(state)
    found = Session.from_payload(
        signer.unsign(request.cookies.get(SESSION_COOKIE), SESSION_MAX_AGE_S)
    )
    if not state.auth_required:
        if found is None or found.name != LOCAL_ACTOR:
            found = Session.new(LOCAL_ACTOR, Role.ADMIN)
            request.state.ui_new_session = found
        return found
    if (
        found is None
        or not dashboard.token_is_active(state.store, found.name, found.role.value)
        or not SessionTable(state.store).is_active(found)
    ):
        return None
    return found


def page_session(request: Request, state: ServerState = Depends(server)) -> Session:
    """The signed-in session of a page; otherwise the browser goes to the sign-in page."""
    found = _session_of(request, state)
    if found is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return found


def api_session(request: Request, state: ServerState = Depends(server)) -> Session:
    """The session of a live-update (JSON) request: 401 instead of a redirect."""
    found = _session_of(request, state)
    if found is None:
        raise Unauthorized("sign in at /ui/login first")
    return found


def check_csrf(request: Request, session: Session, sent: str | None) -> None:
    sent = sent or request.headers.get("x-csrf-token")
    if not session.csrf_ok(sent):
        raise Forbidden("missing or wrong CSRF token: reload the page and submit the form again")


def _operator(session: Session) -> None:
    if not session.can_operate:
        raise Forbidden(
            f"this needs the operator role; {session.name} is {session.role.value}",
            needed=Role.OPERATOR.value,
        )


def operator_change(request: Request, session: Session, csrf: str) -> None:
    """The checks of every state-changing form: the session's CSRF token, then the role."""
    check_csrf(request, session, csrf)
    _operator(session)


def cookie_args(request: Request) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": PREFIX,
    }


def with_session_cookie(request: Request, response: Response) -> Response:
    new: Session | None = getattr(request.state, "ui_new_session", None)
    if new is not None:
        state: ServerState = request.app.state.mlwarden
        response.set_cookie(
            SESSION_COOKIE,
            signer_of(state).sign(new.payload()),
            max_age=SESSION_MAX_AGE_S,
            **cookie_args(request),
        )
    return response


def render(
    request: Request,
    session: Session | None,
    template: str,
    http_status: int = 200,
    **context: Any,
) -> Response:
    state: ServerState = request.app.state.mlwarden
    if "pending_approvals" not in context:
        context["pending_approvals"] = (
            len(dashboard.waiting_approvals(state.store)) if session else 0
        )
    response = templates.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "prefix": PREFIX,
            "refresh_ms": round(state.settings.ui_refresh_s * 1000),
            **context,
        },
        status_code=http_status,
    )
    response.headers["Cache-Control"] = "no-store"
    return with_session_cookie(request, compressed(request, response))


COMPRESS_FROM_BYTES = 1024


def compressed(request: Request, response: Response) -> Response:
    """``response`` gzip-compressed when the client accepts it and it is worth it: the pages
    and the live JSON the browser polls every few seconds (a model page's is ~60 kB, ~10 kB
    compressed). Only the dashboard's own responses, so the API's hot path pays nothing."""
    body = response.body
    if (
        len(body) < COMPRESS_FROM_BYTES
        or "content-encoding" in response.headers
        or "gzip" not in request.headers.get("accept-encoding", "").lower()
    ):
        return response
    response.body = gzip.compress(body, compresslevel=6)
    response.headers["Content-Encoding"] = "gzip"
    response.headers["Content-Length"] = str(len(response.body))
    response.headers["Vary"] = "Accept-Encoding"
    return response


def back(request: Request, url: str, message: str = "") -> Response:
    target = url + (("&" if "?" in url else "?") + "msg=" + quote(message) if message else "")
    return with_session_cookie(request, RedirectResponse(target, status_code=303))


def error_page(request: Request, session: Session | None, exc: MlwardenError) -> Response:
    return render(
        request,
        session,
        "error.html",
        http_status=exc.status_code,
        message=exc.message,
        status_code=exc.status_code,
    )


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (times as ISO strings, anything else as its text)."""
    return json.loads(
        json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))
    )
