"""Signing in with an API token and signing out."""

from __future__ import annotations

import secrets

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mlwarden.api.deps import ServerState, server
from mlwarden.ui.session import (
    LOGIN_COOKIE,
    LOGIN_MAX_AGE_S,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    Session,
    SessionTable,
)
from mlwarden.ui.web import (
    PREFIX,
    back,
    check_csrf,
    cookie_args,
    page_router,
    page_session,
    render,
    signer_of,
)

router = page_router()


def _safe_next(next_url: str | None) -> str:
    if next_url and next_url.startswith(PREFIX) and not next_url.startswith("//"):
        return next_url
    return PREFIX + "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request, next: str | None = None, state: ServerState = Depends(server)
) -> Response:
    if not state.auth_required:
        return back(request, _safe_next(next))
    return _login_form(request, state, next)


def _login_form(
    request: Request, state: ServerState, next_url: str | None, error: str = "", status: int = 200
) -> Response:
    nonce = secrets.token_urlsafe(16)
    response = render(
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
        signer_of(state).sign({"x": nonce}),
        max_age=LOGIN_MAX_AGE_S,
        **cookie_args(request),
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
    expected = signer_of(state).unsign(request.cookies.get(LOGIN_COOKIE), LOGIN_MAX_AGE_S)
    if not expected or not nonce or not secrets.compare_digest(str(expected.get("x")), nonce):
        return _login_form(request, state, next, "The sign-in form expired; try again.", 403)
    found = state.store.authenticate(token.strip())
    if found is None:
        return _login_form(request, state, next, "That token is unknown or revoked.", 401)
    session = Session.new(found[0], found[1])
    SessionTable(state.store).start(session)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        signer_of(state).sign(session.payload()),
        max_age=SESSION_MAX_AGE_S,
        **cookie_args(request),
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
    check_csrf(request, session, csrf)
    if state.auth_required:
        # deleting the cookie only asks the browser: ending the session refuses every copy
        SessionTable(state.store).end(session)
        state.store.audit(session.name, "ui.sign_out", "", {"role": session.role.value})
    response = RedirectResponse(PREFIX + "/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response
