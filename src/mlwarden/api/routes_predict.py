"""``POST /v1/models/{name}/predict``: the gateway's front door.

Body: ``{"instances": {...}}`` for one instance or ``{"instances": [{...}, ...]}`` for a batch,
and an optional ``"key"`` that keeps a caller on the same side of a canary split. The body is
parsed by hand (no pydantic model) because this is the hot path.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Route

from mlwarden.api.deps import ServerState, authorize, json_body
from mlwarden.api.openapi import json_body_doc
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
    # auth is checked here rather than through Depends: dependency solving is a measurable
    # share of this hot path's overhead
    state: ServerState = request.app.state.mlwarden
    await authorize(request, state, Role.OPERATOR)
    instances, key, single = parse_predict_body(await json_body(request))
    gateway = state.gateway_for(request.query_params.get("environment"))
    answers = await gateway.predict(name, instances, key)
    if single:
        return JSONResponse({"model": name, **answers[0], "predictions": answers})
    return JSONResponse({"model": name, "predictions": answers})


async def predict_endpoint(request: Request) -> JSONResponse:
    """The same endpoint as a plain Starlette route.

    ``create_app`` mounts it ahead of the FastAPI route, which stays for the OpenAPI
    document: FastAPI's per-request parameter solving costs a few hundred microseconds
    here, a large share of the gateway's overhead budget.
    """
    return await predict(request.path_params["name"], request)


fast_route = Route("/v1/models/{name}/predict", predict_endpoint, methods=["POST"])
