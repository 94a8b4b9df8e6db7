"""``POST /v1/assistant``: plain-language commands over HTTP, plus dataset upload and download.

The body is ``{"text": "...", "dry_run": false, "confirm": false}``. A dry run answers with
exactly ``{"intent", "arguments", "command", "missing"}``; otherwise the reply carries the
status (done, needs_input, needs_confirmation, not_understood, error), a message, notes and
the result. Errors keep their HTTP status (404 missing dataset, 422 unknown column …).

Reading needs the viewer role only for a dry run; running anything needs operator. One
assistant per app serves every caller; each token has its own conversation (the actor of the
audit log and what "it" means), so callers never act under each other's names. Over HTTP the
assistant touches no file by path: files come as uploaded content and go back as responses.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from mlwarden.api.deps import Principal, ServerState, require, server
from mlwarden.api.openapi import errors_doc
from mlwarden.domain import Role
from mlwarden.errors import Forbidden

if TYPE_CHECKING:
    # imported when the first conversation starts: the assistant's parser, executor and
    # training helpers are a few MB a server that only serves predictions never uses
    from mlwarden.assistant.executor import Assistant, Conversation, Reply

router = APIRouter(tags=["assistant"])
_lock = threading.Lock()
MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


class AssistantRequest(BaseModel):
    text: str = Field(max_length=2_000)
    dry_run: bool = False
    confirm: bool = False


def assistant_for(state: ServerState) -> Assistant:
    """The app's assistant (created on first use), bound to its store and data directory."""
    with _lock:
        existing: Assistant | None = getattr(state, "_assistant", None)
        if existing is None:
            from mlwarden.assistant.executor import Assistant

            existing = Assistant(
                state.store,
                state.settings.data_dir,
                local_files=False,
                reference_size=state.settings.reference_size,
                on_deployment_change=state.gateway.invalidate,
            )
            state._assistant = existing  # type: ignore[attr-defined]
        return existing


# a command that fails answers with its reply (what was understood, and why it failed)
_REPLY_ERRORS = errors_doc(
    {
        "type": "object",
        "required": ["status", "message", "understood", "result"],
        "properties": {
            "status": {"type": "string"},
            "message": {"type": "string"},
            "understood": {"type": "object"},
            "result": {"type": "object"},
        },
    },
    "Refused, or the command failed: the reply says what was understood and why.",
)


def conversation_of(assistant: Assistant, principal: Principal) -> Conversation:
    """The conversation of the calling token (the token's name is unique while it is valid)."""
    return assistant.conversations.get(f"api:{principal.name}", principal.name)


def with_download_url(reply: Reply, prefix: str) -> dict[str, Any]:
    """The reply as a dict; a done download also says where its file is fetched (``url``,
    under ``prefix``): the server answers downloads with the file, it never writes one."""
    body = reply.as_dict()
    if reply.parsed.intent == "download" and reply.status == "done":
        dataset, fmt = reply.result["dataset"], reply.result["format"]
        name = quote(str(dataset["name"]), safe="")
        body["result"]["url"] = (
            f"{prefix}/datasets/{name}/download?version={dataset['version']}&format={fmt}"
        )
    return body


def _answer(reply: Reply) -> JSONResponse:
    return JSONResponse(with_download_url(reply, "/v1/assistant"), status_code=reply.http_status)


@router.post(
    "/v1/assistant",
    summary="Run a plain-language command (or dry-run it)",
    responses=_REPLY_ERRORS,
)
async def ask(
    body: AssistantRequest,
    principal: Principal = Depends(require(Role.VIEWER)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    assistant = assistant_for(state)
    talk = conversation_of(assistant, principal)
    if body.dry_run:
        parsed = await run_in_threadpool(assistant.understand, body.text, talk)
        return JSONResponse(parsed.to_dict())
    if not principal.role.allows(Role.OPERATOR):
        raise Forbidden(
            f"running assistant commands needs the operator role; token {principal.name!r} is "
            f"{principal.role.value} (a dry run only needs viewer)",
            needed=Role.OPERATOR.value,
        )
    reply = await run_in_threadpool(assistant.handle, body.text, talk, confirm=body.confirm)
    return _answer(reply)


@router.post(
    "/v1/assistant/datasets",
    summary="Upload a data file as a new dataset version",
    responses=_REPLY_ERRORS,
)
async def upload(
    file: UploadFile = File(...),
    name: str | None = Form(None),
    principal: Principal = Depends(require(Role.OPERATOR)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    assistant = assistant_for(state)
    content = await file.read()
    reply = await run_in_threadpool(
        assistant.upload,
        file.filename or "upload.csv",
        content,
        name,
        conversation_of(assistant, principal),
    )
    return _answer(reply)


def dataset_file(
    assistant: Assistant, name: str, version: int | None, fmt: str, cleaned: bool
) -> Response:
    """A stored dataset version as a file response (CSV or Parquet), built in memory."""
    info, content = assistant.datasets.encode(name, version, fmt=fmt, cleaned=cleaned)
    filename = f"{info.name}-v{info.version}.{fmt}"
    quoted = quote(filename)
    # a name stored by an older version may hold a quote or non-ASCII: RFC 6266's encoded form
    disposition = (
        f'attachment; filename="{filename}"'
        if quoted == filename
        else f"attachment; filename*=utf-8''{quoted}"
    )
    return Response(
        content, media_type=MEDIA_TYPES[fmt], headers={"Content-Disposition": disposition}
    )


@router.get("/v1/assistant/datasets/{name}/download", summary="A stored dataset version as a file")
async def download(
    name: str,
    version: int | None = None,
    cleaned: bool = False,
    format: str = "csv",
    _: Principal = Depends(require(Role.VIEWER)),
    state: ServerState = Depends(server),
) -> Response:
    assistant = assistant_for(state)
    return await run_in_threadpool(dataset_file, assistant, name, version, format, cleaned)
