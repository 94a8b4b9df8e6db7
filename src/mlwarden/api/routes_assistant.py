"""``POST /v1/assistant``: plain-language commands over HTTP, plus dataset upload and download.

The body is ``{"text": "...", "dry_run": false, "confirm": false}``. A dry run answers with
exactly ``{"intent", "arguments", "command", "missing"}``; otherwise the reply carries the
status (done, needs_input, needs_confirmation, not_understood, error), a message, notes and
the result. Errors keep their HTTP status (404 missing file, 422 unknown column …).

Reading needs the viewer role only for a dry run; running anything needs operator. One
assistant per app keeps the session ("it" = the last dataset or model) across requests.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from mlwarden.api.deps import Principal, ServerState, require, server
from mlwarden.api.openapi import errors_doc
from mlwarden.assistant.executor import Assistant, Reply, command_for
from mlwarden.domain import Role
from mlwarden.errors import Forbidden

router = APIRouter(tags=["assistant"])
_lock = threading.Lock()


class AssistantRequest(BaseModel):
    text: str = Field(max_length=2_000)
    dry_run: bool = False
    confirm: bool = False


def assistant_for(state: ServerState) -> Assistant:
    """The app's assistant (created on first use), bound to its store and data directory."""
    with _lock:
        existing: Assistant | None = getattr(state, "_assistant", None)
        if existing is None:
            existing = Assistant(
                state.store,
                state.settings.data_dir,
                actor="assistant",
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


def _answer(reply: Reply) -> JSONResponse:
    return JSONResponse(reply.as_dict(), status_code=reply.http_status)


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
    if body.dry_run:
        parsed = await run_in_threadpool(assistant.understand, body.text)
        return JSONResponse(parsed.to_dict())
    if not principal.role.allows(Role.OPERATOR):
        raise Forbidden(
            f"running assistant commands needs the operator role; token {principal.name!r} is "
            f"{principal.role.value} (a dry run only needs viewer)",
            needed=Role.OPERATOR.value,
        )

    def run() -> Reply:
        assistant.actor = principal.name
        return assistant.handle(body.text, confirm=body.confirm)

    return _answer(await run_in_threadpool(run))


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
    filename = Path(file.filename or "upload.csv").name
    content = await file.read()

    def store() -> Reply:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / filename
            path.write_bytes(content)
            dataset = name or Path(filename).stem.lower()
            return assistant.run(command_for("upload", {"path": str(path), "name": dataset}))

    return _answer(await run_in_threadpool(store))


@router.get("/v1/assistant/datasets/{name}/download", summary="A stored dataset version as a file")
async def download(
    name: str,
    version: int | None = None,
    cleaned: bool = False,
    format: str = "csv",
    _: Principal = Depends(require(Role.VIEWER)),
    state: ServerState = Depends(server),
) -> Any:
    assistant = assistant_for(state)
    folder = Path(tempfile.mkdtemp(prefix="mlwarden-download-"))

    def export() -> tuple[Any, Path]:
        return assistant.datasets.export(
            name, version, output=folder / f"{name}.{format}", fmt=format, cleaned=cleaned
        )

    try:
        info, path = await run_in_threadpool(export)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    media = "text/csv" if format == "csv" else "application/vnd.apache.parquet"
    return FileResponse(
        path,
        media_type=media,
        filename=f"{info.name}-v{info.version}.{format}",
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
