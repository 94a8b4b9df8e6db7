"""A model's deployment: read it, change it (each change a new revision), undo, roll back.

Every change names its actor (the token's name) and a reason, lands on the model's timeline
as an event, and is audited. The gateway forgets its cached route at once.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool

from mlwarden.api.deps import Principal, ServerState, as_object, json_body, require, server
from mlwarden.api.openapi import body_doc, json_body_doc
from mlwarden.api.routes_models import pydantic_error
from mlwarden.domain import Deployment, DeploymentState, Id, Role
from mlwarden.errors import InvalidInput

router = APIRouter(tags=["deployment"])

_STATE_FIELDS = set(DeploymentState.model_fields)


class DeploymentChange(DeploymentState):
    """The body of PUT and PATCH (the OpenAPI description of what ``_state`` checks)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = ""


def _reason(body: dict[str, Any]) -> str:
    reason = body.pop("reason", "")
    if not isinstance(reason, str):
        raise InvalidInput("'reason' must be a string")
    return reason


def _state(values: dict[str, Any]) -> DeploymentState:
    unknown = sorted(set(values) - _STATE_FIELDS)
    if unknown:
        raise InvalidInput(
            f"unknown deployment fields {unknown}; known: {sorted(_STATE_FIELDS)} and 'reason'",
            fields=unknown,
        )
    try:
        return DeploymentState.model_validate(values)
    except ValidationError as exc:
        raise pydantic_error(exc, "deployment") from None


def _apply(
    state: ServerState, name: str, new: DeploymentState, actor: str, reason: str
) -> Deployment:
    return state.operations(actor).replace(name, new, reason=reason)


def change_deployment(
    state: ServerState, name: str, changes: dict[str, Any], actor: str, reason: str
) -> Deployment:
    """``changes`` over the current deployment as a new revision (``Operations.change``: event,
    audit entry, the gateway's cached route dropped): ``PATCH /v1/models/{name}/deployment``
    and the dashboard's deploy button. Removing the canary removes its share."""
    _state(changes)  # refuse unknown fields and bad values before reading anything
    try:
        return state.operations(actor).change(name, changes, reason=reason)
    except ValidationError as exc:
        raise pydantic_error(exc, "deployment") from None


@router.get("/v1/models/{name}/deployment", summary="The current deployment")
async def current(
    name: str, _: Principal = Depends(require(Role.VIEWER)), state: ServerState = Depends(server)
) -> JSONResponse:
    deployment = await run_in_threadpool(state.store.get_deployment, name)
    return JSONResponse(None if deployment is None else deployment.model_dump(mode="json"))


@router.get("/v1/models/{name}/deployment/history", summary="Every revision, newest first")
async def history(
    name: str,
    limit: int | None = Query(default=None, ge=1, le=10_000),
    _: Principal = Depends(require(Role.VIEWER)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    found = await run_in_threadpool(lambda: state.store.deployment_history(name, limit=limit))
    return JSONResponse([d.model_dump(mode="json") for d in found])


@router.put(
    "/v1/models/{name}/deployment",
    summary="Replace the deployment (new revision)",
    openapi_extra=json_body_doc(DeploymentChange),
)
async def replace(
    name: str,
    request: Request,
    principal: Principal = Depends(require(Role.OPERATOR)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    body = as_object(await json_body(request), "a deployment")
    reason = _reason(body)
    new = _state(body)
    after = await run_in_threadpool(_apply, state, name, new, principal.name, reason)
    return JSONResponse(after.model_dump(mode="json"))


@router.patch(
    "/v1/models/{name}/deployment",
    summary="Change some fields (new revision)",
    openapi_extra=json_body_doc(DeploymentChange),
)
async def patch(
    name: str,
    request: Request,
    principal: Principal = Depends(require(Role.OPERATOR)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    body = as_object(await json_body(request), "a deployment change")
    reason = _reason(body)
    _state(body)  # refuse unknown fields and bad values before reading anything
    after = await run_in_threadpool(change_deployment, state, name, body, principal.name, reason)
    return JSONResponse(after.model_dump(mode="json"))


class UndoRequest(BaseModel):
    revision: Id
    reason: str = ""


@router.post(
    "/v1/models/{name}/deployment/undo",
    summary="Restore an earlier revision",
    openapi_extra=json_body_doc(UndoRequest),
)
async def undo(
    name: str,
    request: Request,
    principal: Principal = Depends(require(Role.OPERATOR)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    try:
        body = UndoRequest.model_validate(as_object(await json_body(request), "an undo request"))
    except ValidationError as exc:
        raise pydantic_error(exc, "undo request") from None

    def restore() -> Deployment:
        ops = state.operations(principal.name)
        return ops.undo_revision(name, body.revision, reason=body.reason)

    after = await run_in_threadpool(restore)
    return JSONResponse(after.model_dump(mode="json"))


@router.post(
    "/v1/models/{name}/deployment/rollback",
    summary="Make the version that served before live again (409 when marked unhealthy)",
    openapi_extra=body_doc(
        {"application/json": {"type": "object", "properties": {"reason": {"type": "string"}}}},
        required=False,
    ),
)
async def rollback(
    name: str,
    request: Request,
    principal: Principal = Depends(require(Role.OPERATOR)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    raw = await request.body()
    body = as_object(await json_body(request), "a rollback request") if raw.strip() else {}
    reason = _reason(dict(body)) or "rollback"

    def roll() -> Deployment:
        return state.operations(principal.name).rollback(name, reason=reason)

    after = await run_in_threadpool(roll)
    return JSONResponse(after.model_dump(mode="json"))
