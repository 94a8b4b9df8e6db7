"""``POST /v1/models/{name}/predict``: the gateway's front door.

Body: ``{"instances": {...}}`` for one instance or ``{"instances": [{...}, ...]}`` for a batch,
and an optional ``"key"`` that keeps a caller on the same side of a canary split. The body is
parsed by hand (no pydantic model) because this is the hot path.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from mlwarden.api.deps import (
    ServerState,
    authorize,
    body_too_large,
    declared_length,
    json_body,
)
from mlwarden.api.openapi import json_body_doc
from mlwarden.capture.validation import parse_json
from mlwarden.domain import Role
from mlwarden.errors import InvalidInput

router = APIRouter(tags=["predict"])

_EXAMPLE: dict[str, Any] = {"instances": {"feature": 1.0}, "key": "optional-sticky-key"}


class PredictRequest(BaseModel):
    """The body, for the OpenAPI document: ``parse_predict_body`` reads it by hand."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": _EXAMPLE})

    instances: dict[str, Any] | list[dict[str, Any]] = Field(
        description="One instance (feature name to value) or a list of them."
    )
    key: str | int | None = Field(
        default=None, description="Keeps a caller on the same side of a canary split."
    )


def parse_predict_body(body: Any) -> tuple[list[Any], str | None, bool]:
    """(instances, key, single) from a predict body; ``InvalidInput`` explaining the shape."""
    if not isinstance(body, dict):
        raise InvalidInput(
            f"the body must be a JSON object like {_EXAMPLE}, received {type(body).__name__}"
        )
    unknown = sorted(set(body) - {"instances", "key"})
    if unknown:
        raise InvalidInput(
            f"unknown fields {unknown} in the predict body; expected 'instances' and "
            "optionally 'key'",
            fields=unknown,
        )
    if "instances" not in body:
        raise InvalidInput(f"the body needs 'instances': one object or a list, e.g. {_EXAMPLE}")
    instances = body["instances"]
    key = body.get("key")
    if key is not None and not isinstance(key, str | int):
        raise InvalidInput(f"'key' must be a string, received {type(key).__name__}")
    single = isinstance(instances, dict)
    if single:
        instances = [instances]
    elif not isinstance(instances, list):
        raise InvalidInput(
            f"'instances' must be an object or a list of objects, received "
            f"{type(instances).__name__}"
        )
    return instances, None if key is None else str(key), single


@router.post(
    "/v1/models/{name}/predict",
    summary="Predict one instance or a batch",
    description=(
        "Validates the instances against the model's schema, routes to the live version "
        "(canary by weight, sticky by `key`), copies to the shadow version in the background, "
        "falls back on error or timeout, and records every prediction. Each answer carries its "
        "record id (for feedback), the version that answered and `served_by`. "
        "`?environment=staging` predicts with the model's staging deployment instead."
    ),
    openapi_extra={
        **json_body_doc(PredictRequest),
        "parameters": [
            {
                "name": "environment",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "maxLength": 32, "default": "production"},
            }
        ],
    },
)
async def predict(name: str, request: Request) -> JSONResponse:
    # for the OpenAPI document: requests are answered by serve_predict, ahead of FastAPI
    state: ServerState = request.app.state.mlwarden
    await authorize(request, state, Role.OPERATOR)
    instances, key, single = parse_predict_body(await json_body(request))
    gateway = state.gateway_for(request.query_params.get("environment"))
    answers = await gateway.predict(name, instances, key)
    if single:
        return JSONResponse({"model": name, **answers[0], "predictions": answers})
    return JSONResponse({"model": name, "predictions": answers})


class _BodyTooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The request body, refused (``_BodyTooLarge``) as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def predict_model(path: str) -> str | None:
    """The model named by a predict path (``/v1/models/{name}/predict``), else None.

    >>> predict_model("/v1/models/titanic/predict"), predict_model("/v1/models/a/b/predict")
    ('titanic', None)
    """
    if not (path.startswith("/v1/models/") and path.endswith("/predict")):
        return None
    name = path[11:-8]
    return name if name and "/" not in name else None


# the answer's JSON exactly as Starlette's JSONResponse renders it, with one encoder for every
# request: ``json.dumps`` with options builds a new encoder per call
_encode_answer = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
).encode
_JSON_TYPE = (b"content-type", b"application/json")


async def serve_predict(app: Any, scope: Scope, receive: Receive, send: Send, name: str) -> None:
    """``POST /v1/models/{name}/predict`` answered as a bare ASGI call, ahead of FastAPI.

    The app hands the hot path here before its middleware stack, router and request wrapper
    (about a fifth of the gateway's CPU per prediction over the bare Starlette floor, see
    docs/benchmarks.md "Gateway overhead"). What those layers did for this endpoint is done
    here: a body over ``max_request_bytes`` is refused while it is read (413, a declared
    ``Content-Length`` before anything else), and every exception becomes the response of the
    app's own exception handler (the same bodies, statuses, headers and metrics as every other
    route). A successful answer is sent as the same bytes and headers a ``JSONResponse`` sends,
    without building one.
    """
    state: ServerState = app.state.mlwarden
    limit = state.settings.max_request_bytes
    request: Request | None = None
    try:
        if declared_length(scope) > limit:
            raise _BodyTooLarge
        if state.auth_required:
            request = Request(scope, receive)
            await authorize(request, state, Role.OPERATOR)
        body = await _read_body(receive, limit)
        if not body.strip():
            raise InvalidInput("the request body is empty; send a JSON document")
        instances, key, single = parse_predict_body(parse_json(body))
        environment = None
        if scope["query_string"]:
            environment = QueryParams(scope["query_string"]).get("environment")
        answers = await state.gateway_for(environment).predict(name, instances, key)
        if single:
            answer = _encode_answer({"model": name, **answers[0], "predictions": answers})
        else:
            answer = _encode_answer({"model": name, "predictions": answers})
        content = answer.encode()
    except _BodyTooLarge:
        response = body_too_large(limit)
    except ClientDisconnect:
        return
    except Exception as exc:
        handler = _exception_handler(app, exc)
        if handler is None:
            raise
        response = await handler(request or Request(scope, receive), exc)
    else:
        headers = [(b"content-length", str(len(content)).encode()), _JSON_TYPE]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        return
    await response(scope, receive, send)


def _exception_handler(app: Any, exc: Exception) -> Any:
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
