"""Health, Prometheus metrics, API tokens and model timelines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from mlwarden import __version__
from mlwarden.api.deps import (
    Principal,
    ServerState,
    as_object,
    json_body,
    require,
    server,
    viewer_unless_public,
)
from mlwarden.api.openapi import json_body_doc
from mlwarden.api.routes_policy import policy_view
from mlwarden.domain import Role
from mlwarden.errors import InvalidInput
from mlwarden.serving.metrics import CONTENT_TYPE_LATEST

router = APIRouter()


@router.get(
    "/health",
    tags=["system"],
    summary="Liveness and database check",
    description=(
        "200 while this server can answer predictions. `status` is `ok`, or "
        "`degraded: database down` while the database is unreachable: predictions are then "
        "served from the last known deployments and recently checked tokens, and their records "
        "wait in the spill journal until the database is back. It stays 200 on purpose: "
        "replicas share one database, and a load balancer that took them all out during an "
        "outage would stop the serving this server keeps up. "
        "`degraded: records cannot be written` while neither the database nor the spill "
        "journal takes records (a full disk): they are held in memory, up to the write queue "
        "limit, after which predictions are refused with 503 rather than answered unrecorded. "
        "`replica` tells this process apart from the others serving the same database: its "
        "`pid`, `caches` (`notified`: PostgreSQL tells it of every change of a deployment or "
        "token; `polling`: it reads deployments again every second, SQLite or the listening "
        "connection lost) and `agent` (`leader`, `standby` waiting to take over, or `off`). "
        "`policy` says whether the agent's policy file validates: when it changed into one that "
        "does not, the agent keeps the policy it read before, `status` is `degraded: policy file "
        "invalid` and `policy.problems` names each key, its value and what is expected."
    ),
)
async def health(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.mlwarden
    database_ok = await run_in_threadpool(state.store.ping)
    stats = state.writer.stats
    problems = [] if database_ok else ["database down"]
    if stats.held:
        problems.append("records cannot be written")
    policy = (await run_in_threadpool(policy_view, state)).summary()
    if policy["error"] is not None:
        problems.append("policy file invalid")
    status = f"degraded: {'; '.join(problems)}" if problems else "ok"
    body: dict[str, Any] = {
        "status": status,
        "database": "ok" if database_ok else "unreachable",
        "version": __version__,
        "auth": "required" if state.auth_required else "disabled (loopback only)",
        "capture": "durable" if state.settings.durable_capture else "batched",
    }
    body["records"] = {
        "pending": stats.pending,
        "spilled_to_journal": stats.spilled,
        "held_in_memory": stats.held,
        "storage_error": stats.storage_error,
    }
    body["replica"] = state.replica()
    body["policy"] = policy
    return JSONResponse(body)


@router.get(
    "/metrics",
    tags=["system"],
    response_class=PlainTextResponse,  # the Prometheus text format, for the OpenAPI document
    summary="Prometheus metrics",
    description="Needs a viewer token while tokens are required, unless `metrics_public` is set.",
)
async def metrics(request: Request) -> Response:
    state: ServerState = request.app.state.mlwarden
    await viewer_unless_public(request, state, state.settings.metrics_public)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    role: Role = Role.VIEWER


@router.post(
    "/v1/tokens",
    tags=["access"],
    status_code=201,
    summary="Create an API token",
    openapi_extra=json_body_doc(TokenRequest),
)
async def create_token(
    request: Request,
    principal: Principal = Depends(require(Role.ADMIN)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    body = TokenRequest.model_validate(as_object(await json_body(request), "a token request"))
    token = await run_in_threadpool(state.store.create_token, body.name, body.role, principal.name)
    return JSONResponse(
        {
            "name": body.name,
            "role": body.role.value,
            "token": token,
            "note": "store this token now: it is shown only once",
        },
        status_code=201,
    )


@router.get("/v1/tokens", tags=["access"], summary="List API tokens (never their value)")
async def list_tokens(
    _: Principal = Depends(require(Role.ADMIN)), state: ServerState = Depends(server)
) -> JSONResponse:
    tokens = await run_in_threadpool(state.store.list_tokens)
    return JSONResponse([{**t, "created_at": t["created_at"].isoformat()} for t in tokens])


@router.delete("/v1/tokens/{name}", tags=["access"], summary="Revoke an API token")
async def revoke_token(
    name: str,
    principal: Principal = Depends(require(Role.ADMIN)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    await run_in_threadpool(state.store.revoke_token, name, principal.name)
    state.tokens.forget(name)
    return JSONResponse({"name": name, "revoked": True})


@router.get("/v1/models/{name}/events", tags=["models"], summary="The model's timeline")
async def events(
    name: str,
    limit: int = 100,
    since: datetime | None = None,
    kind: str | None = None,
    _: Principal = Depends(require(Role.VIEWER)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    if not 1 <= limit <= 10_000:
        raise InvalidInput(f"limit must be between 1 and 10000, got {limit}")
    kinds = [k for k in kind.split(",") if k] if kind else None
    found = await run_in_threadpool(
        lambda: state.store.events(name, limit, kinds=kinds, since=since)
    )
    return JSONResponse([{**e, "ts": e["ts"].isoformat()} for e in found])
