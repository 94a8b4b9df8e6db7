"""The command assistant's console: commands, uploads, dataset downloads, and the session's
conversation so far (:mod:`mlwarden.ui.assistant_history`)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from mlwarden.api.deps import ServerState, server
from mlwarden.errors import MlwardenError
from mlwarden.ui.session import Session
from mlwarden.ui.web import (
    PREFIX,
    check_csrf,
    error_page,
    jsonable,
    operator_change,
    page_router,
    page_session,
    render,
)

router = page_router()


@router.get("/assistant", response_class=HTMLResponse)
def assistant_page(
    request: Request,
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    return render(
        request,
        session,
        "assistant.html",
        reply=None,
        text="",
        available=_assistant_available(),
        history=_history(state, session),
    )


def _history(
    state: ServerState, session: Session, add: tuple[str, dict[str, Any]] | None = None
) -> list[Any]:
    """The session's exchanges with the assistant, oldest first, after recording ``add`` (the
    command and its reply) when given."""
    from mlwarden.ui.assistant_history import histories_of

    histories = histories_of(state)
    key = session.conversation_key  # each sign-in is its own conversation
    if add is not None:
        histories.add(key, *add)
    return histories.of(key)


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
    # kept in the store under the session's key: each sign-in is its own conversation
    talk = assistant.conversations.get(session.conversation_key, session.name)
    return assistant, talk


def _assistant_reply(
    request: Request,
    session: Session,
    text: str,
    reply: dict[str, Any],
    state: ServerState,
    asked: str | None = None,
) -> Response:
    """The reply to ``text`` (the command field keeps it), recorded in the session's history
    as ``asked`` (an upload: ``upload <file>``) or ``text``."""
    return render(
        request,
        session,
        "assistant.html",
        reply=reply,
        text=text,
        available=True,
        result_json=json.dumps(jsonable(reply.get("result", {})), indent=2)[:20_000],
        # the earlier exchanges: this one is the reply shown in full above them
        history=_history(state, session, (text if asked is None else asked, reply))[:-1],
    )


def _assistant_form_error(
    request: Request, session: Session, error: str, state: ServerState
) -> Response:
    return render(
        request,
        session,
        "assistant.html",
        reply=None,
        text="",
        available=True,
        error=error,
        history=_history(state, session),
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

    check_csrf(request, session, csrf)
    if not text.strip():
        return _assistant_form_error(
            request, session, "Type a command, for example: list models", state
        )
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
    return _assistant_reply(request, session, text, reply, state)


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
    operator_change(request, session, str(form.get("csrf") or ""))
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _assistant_form_error(
            request, session, "Choose a file to upload (CSV, TSV, Parquet or JSON lines).", state
        )
    content = await upload.read()
    name = str(form.get("name") or "").strip() or None
    assistant, talk = _assistant_of(state, session)
    reply = await run_in_threadpool(assistant.upload, upload.filename, content, name, talk)
    return _assistant_reply(
        request, session, "", reply.as_dict(), state, asked=f"upload {upload.filename}"
    )


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
        return error_page(request, session, exc)
