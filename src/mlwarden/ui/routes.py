"""The dashboard: server-rendered pages under ``/ui``, small JSON endpoints for live updates,
our own static files and Plotly.js served from the installed ``plotly`` package.

``mount_ui(app)`` is the one call the application makes. Pages need a browser session (sign in
with an API token at ``/ui/login``); when the server runs without auth (loopback only) the
browser is the local admin. Every POST checks the session's CSRF token. Viewers see and read
everything; operators also approve, reject, undo and switch monitoring, and the same checks are
made on the server whatever the page showed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import plotly
from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from mlwarden.agent.journal import progress_of
from mlwarden.api.deps import LOCAL_ACTOR, ServerState, Unauthorized, server
from mlwarden.domain import Role
from mlwarden.errors import Conflict, Forbidden, InvalidInput, MlwardenError, NotFound
from mlwarden.ui import queries
from mlwarden.ui.session import (
    LOGIN_COOKIE,
    LOGIN_MAX_AGE_S,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    Session,
    SessionTable,
    Signer,
    load_secret,
)

__all__ = ["mount_ui", "router"]

HERE = Path(__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
PREFIX = "/ui"

router = APIRouter(prefix=PREFIX, include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))


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


def _sparkline(values: list[float | None] | None, width: int = 120, height: int = 28) -> str:
    """An inline SVG polyline (server-side: no script needed for 20 rows of sparklines)."""
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
templates.env.globals["sparkline"] = _sparkline
templates.env.globals["progress_of"] = progress_of
templates.env.globals["HEALTH_LABELS"] = queries.HEALTH_LABELS
STATUS_ICONS = {"healthy": "✓", "degraded": "!", "failing": "✕", "disabled": "‖", "unknown": "?"}
templates.env.globals["STATUS_ICONS"] = STATUS_ICONS


# ---------------------------------------------------------------------------- sessions


class SignInRequired(Exception):
    """A page was asked for without a valid session: the handler redirects to the sign-in."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def _signer(state: ServerState) -> Signer:
    signer: Signer | None = getattr(state, "_ui_signer", None)
    if signer is None:
        signer = Signer(load_secret(state.settings.data_dir))
        state._ui_signer = signer  # type: ignore[attr-defined]
    return signer


def _session_of(request: Request, state: ServerState) -> Session | None:
    signer = _signer(state)
    found = Session.from_payload(
        signer.unsign(request.cookies.get(SESSION_COOKIE), SESSION_MAX_AGE_S)
    )
    if not state.auth_required:
        if found is None or found.name != LOCAL_ACTOR:
            found = Session.new(LOCAL_ACTOR, Role.ADMIN)
            request.state.ui_new_session = found
        return found
    engine = state.store.engine
    if (
        found is None
        or not queries.token_is_active(engine, found.name, found.role.value)
        or not SessionTable(engine).is_active(found)
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


def _check_csrf(request: Request, session: Session, sent: str | None) -> None:
    sent = sent or request.headers.get("x-csrf-token")
    if not session.csrf_ok(sent):
        raise Forbidden("missing or wrong CSRF token: reload the page and submit the form again")


def _operator(session: Session) -> None:
    if not session.can_operate:
        raise Forbidden(
            f"this needs the operator role; {session.name} is {session.role.value}",
            needed=Role.OPERATOR.value,
        )


def _operator_change(request: Request, session: Session, csrf: str) -> None:
    """The checks of every state-changing form: the session's CSRF token, then the role."""
    _check_csrf(request, session, csrf)
    _operator(session)


def _cookie_args(request: Request) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": PREFIX,
    }


def _with_session_cookie(request: Request, response: Response) -> Response:
    new: Session | None = getattr(request.state, "ui_new_session", None)
    if new is not None:
        state: ServerState = request.app.state.mlwarden
        response.set_cookie(
            SESSION_COOKIE,
            _signer(state).sign(new.payload()),
            max_age=SESSION_MAX_AGE_S,
            **_cookie_args(request),
        )
    return response


def _render(
    request: Request,
    session: Session | None,
    template: str,
    http_status: int = 200,
    **context: Any,
) -> Response:
    state: ServerState = request.app.state.mlwarden
    pending = queries.pending_approval_count(state.store.engine) if session else 0
    response = templates.TemplateResponse(
        request,
        template,
        {"session": session, "pending_approvals": pending, "prefix": PREFIX, **context},
        status_code=http_status,
    )
    response.headers["Cache-Control"] = "no-store"
    return _with_session_cookie(request, response)


def _back(request: Request, url: str, message: str = "") -> Response:
    target = url + (("&" if "?" in url else "?") + "msg=" + quote(message) if message else "")
    return _with_session_cookie(request, RedirectResponse(target, status_code=303))


def _error_page(request: Request, session: Session | None, exc: MlwardenError) -> Response:
    return _render(
        request,
        session,
        "error.html",
        http_status=exc.status_code,
        message=exc.message,
        status_code=exc.status_code,
    )


# ---------------------------------------------------------------------------- static files


@router.get("/vendor/plotly.min.js")
def plotly_js(request: Request) -> Response:
    """Plotly.js from the installed ``plotly`` package (nothing is loaded from a CDN)."""
    stat = PLOTLY_JS.stat()
    etag = f'"plotly-{plotly.__version__}-{int(stat.st_mtime)}-{stat.st_size}"'
    headers = {"Cache-Control": "public, max-age=604800, immutable", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return FileResponse(PLOTLY_JS, media_type="application/javascript", headers=headers)


# ---------------------------------------------------------------------------- sign in / out


def _safe_next(next_url: str | None) -> str:
    if next_url and next_url.startswith(PREFIX) and not next_url.startswith("//"):
        return next_url
    return PREFIX + "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request, next: str | None = None, state: ServerState = Depends(server)
) -> Response:
    if not state.auth_required:
        return _back(request, _safe_next(next))
    return _login_form(request, state, next)


def _login_form(
    request: Request, state: ServerState, next_url: str | None, error: str = "", status: int = 200
) -> Response:
    nonce = secrets.token_urlsafe(16)
    response = _render(
        request,
        None,
        "login.html",
        http_status=status,
        nonce=nonce,
        next=_safe_next(next_url),
        error=error,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        _signer(state).sign({"x": nonce}),
        max_age=LOGIN_MAX_AGE_S,
        **_cookie_args(request),
    )
    return response


@router.post("/login")
def login(
    request: Request,
    token: str = Form(""),
    nonce: str = Form(""),
    next: str = Form(""),
    state: ServerState = Depends(server),
) -> Response:
    expected = _signer(state).unsign(request.cookies.get(LOGIN_COOKIE), LOGIN_MAX_AGE_S)
    if not expected or not nonce or not secrets.compare_digest(str(expected.get("x")), nonce):
        return _login_form(request, state, next, "The sign-in form expired; try again.", 403)
    found = state.store.authenticate(token.strip())
    if found is None:
        return _login_form(request, state, next, "That token is unknown or revoked.", 401)
    session = Session.new(found[0], found[1])
    SessionTable(state.store.engine).start(session)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        _signer(state).sign(session.payload()),
        max_age=SESSION_MAX_AGE_S,
        **_cookie_args(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    state.store.audit(session.name, "ui.sign_in", "", {"role": session.role.value})
    return response


@router.post("/logout")
def logout(
    request: Request,
    csrf: str = Form(""),
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    _check_csrf(request, session, csrf)
    if state.auth_required:
        # deleting the cookie only asks the browser: ending the session refuses every copy
        SessionTable(state.store.engine).end(session)
        state.store.audit(session.name, "ui.sign_out", "", {"role": session.role.value})
    response = RedirectResponse(PREFIX + "/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


# ---------------------------------------------------------------------------- fleet overview


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
    return _render(
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
            "pending_approvals": queries.pending_approval_count(state.store.engine),
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/live/counts")
def live_counts(
    session: Session = Depends(api_session), state: ServerState = Depends(server)
) -> JSONResponse:
    """What the navigation bar shows on every page: approvals waiting."""
    return JSONResponse(
        {"pending_approvals": queries.pending_approval_count(state.store.engine)},
        headers={"Cache-Control": "no-store"},
    )


# ---------------------------------------------------------------------------- model page


def _model_live(state: ServerState, name: str) -> dict[str, Any]:
    model_id = state.store.model_id(name)
    deployment = state.store.get_deployment(name)
    data = queries.model_signals(state.store.engine, model_id).public()
    data["deployment"] = None if deployment is None else deployment.model_dump(mode="json")
    data["monitoring"] = state.store.is_monitored(name)
    return data


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(
    request: Request,
    name: str,
    msg: str = "",
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    try:
        spec = state.store.get_model(name)
    except NotFound as exc:
        return _error_page(request, session, exc)
    from mlwarden.agent.repo import AgentRepo

    live = _model_live(state, name)
    return _render(
        request,
        session,
        "model.html",
        spec=spec,
        name=name,
        live=live,
        msg=msg,
        versions=state.store.list_versions(name),
        history=state.store.deployment_history(name, limit=50),
        deployment=state.store.get_deployment(name),
        incidents=AgentRepo(state.store).list_incidents(model=name, limit=20),
    )


@router.get("/live/models/{name}")
def live_model(
    name: str, session: Session = Depends(api_session), state: ServerState = Depends(server)
) -> JSONResponse:
    return JSONResponse(_model_live(state, name), headers={"Cache-Control": "no-store"})


@router.get("/models/{name}/signals.{fmt}")
def export_signals(
    name: str,
    fmt: str,
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    if fmt not in ("csv", "json"):
        raise InvalidInput(f"export format must be csv or json, not {fmt!r}")
    rows = queries.signals_export(state.store.engine, state.store.model_id(name))
    disposition = {"Content-Disposition": f'attachment; filename="{name}-signals.{fmt}"'}
    if fmt == "json":
        return JSONResponse(rows, headers=disposition)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["window", "ts", "name", "value"])
    writer.writeheader()
    writer.writerows(rows)
    return PlainTextResponse(buffer.getvalue(), media_type="text/csv", headers=disposition)


@router.get("/models/{name}/features/{feature}", response_class=HTMLResponse)
def feature_page(
    request: Request,
    name: str,
    feature: str,
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    try:
        spec = state.store.get_model(name)
    except NotFound as exc:
        return _error_page(request, session, exc)
    if feature not in {f.name for f in spec.features}:
        return _error_page(request, session, NotFound(f"model {name!r} has no feature {feature!r}"))
    deployment = state.store.get_deployment(name)
    reference = None
    if deployment is not None and deployment.live_version is not None:
        reference = state.store.reference_sample(name, deployment.live_version)
    recent = [
        r["features"] for r in state.store.fetch_records(name, limit=2_000, newest_first=True)
    ]
    dist = queries.feature_distribution(reference, recent, feature)
    return _render(request, session, "feature.html", name=name, feature=feature, dist=dist)


@router.post("/models/{name}/monitoring")
def set_monitoring(
    request: Request,
    name: str,
    on: str = Form(...),
    csrf: str = Form(""),
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    _operator_change(request, session, csrf)
    enabled = on == "1"
    state.store.set_monitoring(name, enabled, actor=session.name)
    state.store.audit(session.name, "model.monitoring", name, {"monitoring": enabled})
    return _back(
        request,
        f"{PREFIX}/models/{quote(name)}",
        "Monitoring started." if enabled else "Monitoring stopped.",
    )


@router.post("/models/{name}/undo")
def undo_deployment(
    request: Request,
    name: str,
    revision: int = Form(...),
    reason: str = Form(""),
    csrf: str = Form(""),
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    from mlwarden.registry.registry import Registry

    _operator_change(request, session, csrf)
    after = Registry(state.store).undo(
        name,
        revision,
        actor=session.name,
        reason=reason.strip() or f"undo to revision {revision} from the dashboard",
    )
    state.gateway.invalidate(name)
    return _back(
        request,
        f"{PREFIX}/models/{quote(name)}",
        f"Revision {revision} restored as revision {after.revision}.",
    )


# ---------------------------------------------------------------------------- incidents


@router.get("/incidents", response_class=HTMLResponse)
def incidents_page(
    request: Request,
    model: str = "",
    state_filter: str = "",
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    from mlwarden.agent.repo import AgentRepo

    try:
        rows = AgentRepo(state.store).list_incidents(
            model=model or None, state=state_filter or None, limit=200
        )
    except NotFound as exc:
        return _error_page(request, session, exc)
    return _render(
        request,
        session,
        "incidents.html",
        incidents=rows,
        model=model,
        state_filter=state_filter,
        models=state.store.model_names(),
    )


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(
    request: Request,
    incident_id: int,
    msg: str = "",
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    from mlwarden.agent.reports import incident_context

    try:
        context = incident_context(state.store, incident_id)
    except NotFound as exc:
        return _error_page(request, session, exc)
    _fill_incident(context["diagnosis"], incident_id)
    return _render(request, session, "incident.html", msg=msg, **context)


def _fill_incident(diagnosis: Any, incident_id: int) -> None:
    """The checks' ``INCIDENT`` placeholder is this incident (``mlwarden report INCIDENT``)."""
    from mlwarden.diagnose.checks import fill_checks

    if diagnosis is not None:
        diagnosis.checks = fill_checks(diagnosis.checks, incident=incident_id)


@router.get("/live/incidents/{incident_id}")
def live_incident(
    incident_id: int, session: Session = Depends(api_session), state: ServerState = Depends(server)
) -> JSONResponse:
    from mlwarden.agent.repo import AgentRepo

    incident = AgentRepo(state.store).get_incident(incident_id)
    return JSONResponse(
        {
            "state": incident["state"],
            "severity": incident["severity"],
            "actions": [{"id": a["id"], "state": a["state"]} for a in incident["actions"]],
            "verifications": [v["verdict"] for v in incident["verifications"]],
            "timeline": len(incident["timeline"] or []),
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
    from mlwarden.agent.reports import incident_context

    if fmt not in ("md", "html", "json"):
        raise InvalidInput(f"report format must be md, html or json, not {fmt!r}")
    context = incident_context(state.store, incident_id)
    diagnosis = context["diagnosis"]
    if diagnosis is None:
        raise Conflict(f"incident {incident_id} cannot be diagnosed: {context['diagnosis_error']}")
    _fill_incident(diagnosis, incident_id)
    filename = f"incident-{incident_id}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "md":
        return PlainTextResponse(
            diagnosis.to_markdown(), media_type="text/markdown", headers=headers
        )
    if fmt == "html":
        return HTMLResponse(diagnosis.to_html(), headers=headers)
    body = {"incident": _jsonable(context["incident"]), "diagnosis": diagnosis.to_dict()}
    return JSONResponse(body, headers=headers)


def _jsonable(value: Any) -> Any:
    return json.loads(
        json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))
    )


# ---------------------------------------------------------------------------- approvals


@router.get("/approvals", response_class=HTMLResponse)
def approvals_page(
    request: Request,
    msg: str = "",
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    from mlwarden.agent.approvals import Approvals
    from mlwarden.agent.repo import AgentRepo

    approvals = Approvals(state.store)
    repo = AgentRepo(state.store)
    pending = approvals.list(state="pending")
    for item in pending:
        item["decision"] = (
            repo.get_decision(item["decision_id"]) if item["decision_id"] is not None else None
        )
    decided = [a for a in approvals.list() if a["state"] != "pending"][:50]
    return _render(request, session, "approvals.html", pending=pending, decided=decided, msg=msg)


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
    from mlwarden.agent.approvals import Approvals

    _operator_change(request, session, csrf)
    approvals = Approvals(state.store)
    try:
        message = _decide(state, approvals, approval_id, verdict, session, reason)
    except (Conflict, InvalidInput, NotFound) as exc:
        return _error_page(request, session, exc)
    return _back(request, f"{PREFIX}/approvals", message)


def _decide(
    state: ServerState,
    approvals: Any,
    approval_id: int,
    verdict: str,
    session: Session,
    reason: str,
) -> str:
    if verdict == "approve":
        # the approval is recorded and its action journaled; the agent runs it once, on its
        # next pass, with the configured policy (never inside this request, never twice)
        approved = approvals.approve(
            approval_id, actor=session.name, role=session.role, reason=reason
        )
        message = (
            f"Approved: {approved['action']} on {approved['model']} is journaled as action "
            f"{approved['action_id']}; the agent runs it on its next pass."
        )
    elif verdict == "reject":
        rejected = approvals.reject(
            approval_id, actor=session.name, role=session.role, reason=reason
        )
        message = f"Rejected: {rejected['action']} on {rejected['model']}."
    else:
        raise NotFound(f"no such verdict {verdict!r}: use approve or reject")
    return message


# ---------------------------------------------------------------------------- audit log


def _parse_time(value: str, what: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{what} must be a date or time like 2026-11-27T10:00, not {value!r}"
        ) from None
    from mlwarden.store.repository import as_utc

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
        entries = queries.audit_page(
            state.store.engine,
            model=model or None,
            actor=actor or None,
            kind=kind or None,
            since=_parse_time(since, "since"),
            until=_parse_time(until, "until"),
        )
    except InvalidInput as exc:
        return _error_page(request, session, exc)
    ok, bad = state.store.verify_audit()
    return _render(
        request,
        session,
        "audit.html",
        entries=entries,
        chain_ok=ok,
        chain_bad=bad,
        filters={"model": model, "actor": actor, "kind": kind, "since": since, "until": until},
    )


# ---------------------------------------------------------------------------- diagnose


@router.get("/diagnose", response_class=HTMLResponse)
def diagnose_page(request: Request, session: Session = Depends(page_session)) -> Response:
    from mlwarden.diagnose.assistant import list_scenarios

    return _render(
        request,
        session,
        "diagnose.html",
        scenarios=list_scenarios(),
        answer=None,
        text="",
        scenario="",
    )


@router.post("/diagnose", response_class=HTMLResponse)
def diagnose_submit(
    request: Request,
    text: str = Form(""),
    scenario: str = Form(""),
    csrf: str = Form(""),
    session: Session = Depends(page_session),
) -> Response:
    from mlwarden.diagnose.assistant import diagnose_scenario, diagnose_text, list_scenarios

    _check_csrf(request, session, csrf)
    error = ""
    answer = None
    try:
        if scenario:
            answer = diagnose_scenario(scenario)
        elif text.strip():
            answer = diagnose_text(text)
        else:
            error = "Describe what you see, or pick a predefined scenario."
    except MlwardenError as exc:
        error = exc.message
    return _render(
        request,
        session,
        "diagnose.html",
        scenarios=list_scenarios(),
        answer=answer,
        error=error,
        text=text,
        scenario=scenario,
    )


# ---------------------------------------------------------------------------- assistant console


@router.get("/assistant", response_class=HTMLResponse)
def assistant_page(request: Request, session: Session = Depends(page_session)) -> Response:
    return _render(
        request, session, "assistant.html", reply=None, text="", available=_assistant_available()
    )


def _assistant_available() -> bool:
    try:
        import mlwarden.api.routes_assistant  # noqa: F401
    except ImportError:
        return False
    return True


def _assistant_of(state: ServerState, session: Session) -> tuple[Any, Any]:
    """The server's assistant and this browser session's own conversation with it."""
    from mlwarden.api.routes_assistant import assistant_for

    assistant = assistant_for(state)
    # keyed by the session's CSRF token too: each sign-in is its own conversation
    talk = assistant.conversations.get(f"ui:{session.name}:{session.csrf}", session.name)
    return assistant, talk


def _assistant_reply(
    request: Request, session: Session, text: str, reply: dict[str, Any]
) -> Response:
    return _render(
        request,
        session,
        "assistant.html",
        reply=reply,
        text=text,
        available=True,
        result_json=json.dumps(_jsonable(reply.get("result", {})), indent=2)[:20_000],
    )


def _assistant_form_error(request: Request, session: Session, error: str) -> Response:
    return _render(
        request, session, "assistant.html", reply=None, text="", available=True, error=error
    )


@router.post("/assistant", response_class=HTMLResponse)
def assistant_submit(
    request: Request,
    text: str = Form(""),
    confirm: str = Form(""),
    csrf: str = Form(""),
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    from mlwarden.api.routes_assistant import with_download_url

    _check_csrf(request, session, csrf)
    if not text.strip():
        return _assistant_form_error(request, session, "Type a command, for example: list models")
    assistant, talk = _assistant_of(state, session)
    reply: dict[str, Any]
    if not session.can_operate:
        reply = {
            "status": "dry_run",
            "understood": assistant.understand(text, talk).to_dict(),
            "message": "Viewers can see how a command is understood; running it needs an operator.",
            "notes": [],
            "result": {},
        }
    else:
        reply = with_download_url(
            assistant.handle(text, talk, confirm=confirm == "1"), f"{PREFIX}/assistant"
        )
    return _assistant_reply(request, session, text, reply)


@router.post("/assistant/datasets", response_class=HTMLResponse)
async def assistant_upload(
    request: Request,
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    """An uploaded file stored as a dataset version (operators; the file's content only)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import UploadFile

    form = await request.form()
    _operator_change(request, session, str(form.get("csrf") or ""))
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _assistant_form_error(
            request, session, "Choose a file to upload (CSV, TSV, Parquet or JSON lines)."
        )
    content = await upload.read()
    name = str(form.get("name") or "").strip() or None
    assistant, talk = _assistant_of(state, session)
    reply = await run_in_threadpool(assistant.upload, upload.filename, content, name, talk)
    return _assistant_reply(request, session, "", reply.as_dict())


@router.get("/assistant/datasets/{name}/download")
def assistant_download(
    request: Request,
    name: str,
    version: int | None = None,
    cleaned: bool = False,
    format: str = "csv",
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    """A stored dataset version as a file, for any signed-in role (like the API's download)."""
    from mlwarden.api.routes_assistant import dataset_file

    assistant, _talk = _assistant_of(state, session)
    try:
        return dataset_file(assistant, name, version, format, cleaned)
    except MlwardenError as exc:
        return _error_page(request, session, exc)


# ---------------------------------------------------------------------------- mounting


def mount_ui(app: FastAPI) -> None:
    """Add the dashboard to ``app``: pages and live JSON under ``/ui``, our static files under
    ``/ui/static``, and the sign-in redirect for pages opened without a session. Idempotent."""
    if getattr(app.state, "ui_mounted", False):
        return
    app.state.ui_mounted = True
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def _root() -> RedirectResponse:
        # a person opening the server's address wants the dashboard, not a JSON 404
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"{PREFIX}/login?next={quote(exc.next_url)}", status_code=303)
