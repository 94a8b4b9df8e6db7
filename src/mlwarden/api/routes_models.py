"""Models and their versions: register, upload a skops artifact, add a remote endpoint, list."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from mlwarden.api.deps import Principal, RowId, ServerState, as_object, json_body, require, server
from mlwarden.api.openapi import body_doc, json_body_doc
from mlwarden.capture.validation import parse_json, printable
from mlwarden.domain import ModelSpec, Role
from mlwarden.errors import InvalidArtifact, InvalidInput
from mlwarden.registry.registry import Registry
from mlwarden.serving.predictors import ResponseMapping
from mlwarden.store.registry import VersionInfo

router = APIRouter(tags=["models"])


def pydantic_error(exc: ValidationError, what: str) -> InvalidInput:
    """A ValidationError as an ``InvalidInput`` naming each bad field."""
    errors = [
        {
            "field": ".".join(str(p) for p in err["loc"]),
            "message": err["msg"],
            "received": printable(err.get("input")),
        }
        for err in exc.errors()
    ]
    first = errors[0]
    return InvalidInput(
        f"invalid {what}: {first['field'] or 'body'}: {first['message']}", errors=errors
    )


def _version_json(info: VersionInfo) -> dict[str, Any]:
    return info.model_dump(mode="json")


def _deployment_json(deployment: Any) -> dict[str, Any] | None:
    return None if deployment is None else deployment.model_dump(mode="json")


@router.post(
    "/v1/models",
    status_code=201,
    summary="Register a model (admin)",
    openapi_extra=json_body_doc(ModelSpec),
)
async def register_model(
    request: Request,
    principal: Principal = Depends(require(Role.ADMIN)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    body = as_object(await json_body(request), "a model spec")
    try:
        spec = ModelSpec.model_validate(body)
    except ValidationError as exc:
        raise pydantic_error(exc, "model spec") from None
    await run_in_threadpool(Registry(state.store).register_model, spec, principal.name)
    return JSONResponse(spec.model_dump(mode="json"), status_code=201)


@router.get("/v1/models", summary="List models with their current deployment")
async def list_models(
    _: Principal = Depends(require(Role.VIEWER)), state: ServerState = Depends(server)
) -> JSONResponse:
    def collect() -> list[dict[str, Any]]:
        return [
            {
                **spec.model_dump(mode="json"),
                "deployment": _deployment_json(state.store.get_deployment(spec.name)),
            }
            for spec in state.store.list_models()
        ]

    return JSONResponse(await run_in_threadpool(collect))


@router.get("/v1/models/{name}", summary="One model: spec, versions, deployment")
async def get_model(
    name: str,
    _: Principal = Depends(require(Role.VIEWER)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    def collect() -> dict[str, Any]:
        spec = state.store.get_model(name)
        return {
            **spec.model_dump(mode="json"),
            "versions": [_version_json(v) for v in state.store.list_versions(name)],
            "deployment": _deployment_json(state.store.get_deployment(name)),
        }

    return JSONResponse(await run_in_threadpool(collect))


@router.delete(
    "/v1/models/{name}",
    summary="Delete a model that serves nothing, with all it stored (admin)",
    description=(
        "Refused (409) while a deployment names any of its versions: undeploy first "
        '(`PUT /v1/models/{name}/deployment` with `{"live_version": null}`). Its versions, '
        "deployment revisions, records, labels, events, windows, findings, incidents and agent "
        "actions go with it; the audit log keeps the deletion."
    ),
)
async def delete_model(
    name: str,
    principal: Principal = Depends(require(Role.ADMIN)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    counts = await run_in_threadpool(state.store.delete_model, name, actor=principal.name)
    for gateway in (state.gateway, *state.environments.values()):
        gateway.invalidate(name)  # a model registered again under this name starts afresh
    return JSONResponse({"deleted": name, **counts})


# ---------------------------------------------------------------------------- versions


def _json_field(raw: Any, name: str) -> Any:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bytes | str):
        try:
            return parse_json(raw)
        except InvalidInput as exc:
            raise InvalidInput(f"field {name!r}: {exc.message}") from None
    return raw


def _check_extras(
    metrics: Any, reference: Any, timeout_ms: Any
) -> tuple[dict[str, Any], list[dict[str, Any]] | None, float | None]:
    if metrics is not None and not isinstance(metrics, dict):
        raise InvalidInput("'metrics' must be a JSON object of metric name to value")
    if reference is not None and (
        not isinstance(reference, list) or not all(isinstance(r, dict) for r in reference)
    ):
        raise InvalidInput("'reference' must be a JSON list of objects (rows of training data)")
    timeout = None
    if timeout_ms not in (None, ""):
        try:
            timeout = float(timeout_ms)
        except (TypeError, ValueError):
            timeout = math.nan
        if not (math.isfinite(timeout) and timeout > 0):
            raise InvalidInput(
                f"'timeout_ms' must be a positive number, received {printable(timeout_ms)!r}"
            )
    return metrics or {}, reference, timeout


def check_artifact(artifact: bytes, spec: ModelSpec) -> None:
    """Refuse a file that is not a loadable skops model for this schema (422, nothing stored)."""
    from mlwarden.registry.artifacts import load_model
    from mlwarden.serving.predictors import LocalPredictor

    if not artifact:
        raise InvalidArtifact("the model file is empty; upload a skops file")
    estimator = load_model(artifact)
    LocalPredictor(estimator, spec)  # the columns it was trained on must be in the schema


_EXTRAS: dict[str, Any] = {
    "metrics": {"type": "string", "description": "JSON object: metric name to value"},
    "reference": {"type": "string", "description": "JSON list of training rows (objects)"},
    "timeout_ms": {"type": "number", "exclusiveMinimum": 0},
    "description": {"type": "string"},
}
VERSION_UPLOAD_DOC = {
    **body_doc(
        {
            "multipart/form-data": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}, **_EXTRAS},
            },
            "application/octet-stream": {"type": "string", "format": "binary"},
        }
    ),
    "parameters": [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": schema,
            "description": "With a raw body (application/octet-stream) only.",
        }
        for name, schema in _EXTRAS.items()
    ],
}


@router.post(
    "/v1/models/{name}/versions",
    status_code=201,
    summary="Upload a scikit-learn version (skops file)",
    description=(
        "Multipart form with `file` (the .skops file) and optional `metrics` (JSON object), "
        "`reference` (JSON list of training rows), `timeout_ms`, `description`; or the raw "
        "skops bytes as the body (`application/octet-stream`) with the same optional fields "
        "as query parameters."
    ),
    openapi_extra=VERSION_UPLOAD_DOC,
)
async def upload_version(
    name: str,
    request: Request,
    principal: Principal = Depends(require(Role.OPERATOR)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    fields: dict[str, Any]
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("the multipart form needs a 'file' part with the skops model")
        artifact = await upload.read()
        fields = {k: v for k, v in form.items() if k != "file"}
    else:
        artifact = await request.body()
        fields = dict(request.query_params)
    metrics, reference, timeout = _check_extras(
        _json_field(fields.get("metrics"), "metrics"),
        _json_field(fields.get("reference"), "reference"),
        fields.get("timeout_ms"),
    )
    description = str(fields.get("description") or "")

    def store_it() -> Any:
        spec = state.store.get_model(name)
        check_artifact(artifact, spec)
        return state.store.add_version(
            name,
            kind="sklearn",
            artifact=artifact,
            timeout_ms=timeout,
            training_metrics=metrics,
            reference_sample=reference,
            description=description,
            actor=principal.name,
        )

    info = await run_in_threadpool(store_it)
    return JSONResponse(_version_json(info), status_code=201)


class RemoteVersion(BaseModel):
    url: str = Field(min_length=1, pattern=r"^https?://")
    protocol: str = "json"
    remote_name: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_ms: float | None = Field(default=None, gt=0)
    metrics: dict[str, Any] = Field(default_factory=dict)
    reference: list[dict[str, Any]] | None = None
    description: str = ""
    response: dict[str, str] = Field(
        default_factory=dict,
        description="The response field mapping of a generic JSON endpoint whose answers "
        "mlwarden does not read by itself: 'predictions' (dotted path to the answers), "
        "'prediction', 'confidence', 'probabilities' (paths inside an answer).",
    )


@router.post(
    "/v1/models/{name}/versions/remote",
    status_code=201,
    summary="Add a version served elsewhere (generic JSON or KServe v2 endpoint)",
    openapi_extra=json_body_doc(RemoteVersion),
)
async def add_remote_version(
    name: str,
    request: Request,
    principal: Principal = Depends(require(Role.OPERATOR)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    try:
        body = RemoteVersion.model_validate(as_object(await json_body(request), "a remote version"))
    except ValidationError as exc:
        raise pydantic_error(exc, "remote version") from None
    ResponseMapping.of(body.response)  # an unknown field or an empty path: a 422 now

    def store_it() -> Any:
        return Registry(state.store).add_remote_version(
            name,
            body.url,
            protocol=body.protocol,  # type: ignore[arg-type]
            remote_name=body.remote_name,
            headers=body.headers,
            timeout_ms=body.timeout_ms,
            reference=body.reference,
            metrics=body.metrics,
            description=body.description,
            actor=principal.name,
            response=body.response,
        )

    info = await run_in_threadpool(store_it)
    return JSONResponse(_version_json(info), status_code=201)


@router.get("/v1/models/{name}/versions", summary="List the versions of a model")
async def list_versions(
    name: str,
    _: Principal = Depends(require(Role.VIEWER)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    versions = await run_in_threadpool(state.store.list_versions, name)
    return JSONResponse([_version_json(v) for v in versions])


@router.get("/v1/models/{name}/versions/{number}", summary="One version of a model")
async def get_version(
    name: str,
    number: RowId,
    _: Principal = Depends(require(Role.VIEWER)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    info = await run_in_threadpool(state.store.get_version, name, number)
    return JSONResponse(_version_json(info))


@router.delete(
    "/v1/models/{name}/versions/{number}",
    summary="Delete a version no deployment serves (admin)",
    description=(
        "Refused (409) while it is the live, canary, shadow or fallback version. Its records "
        "and incidents stay as history; its number is never given to another version."
    ),
)
async def delete_version(
    name: str,
    number: int,
    principal: Principal = Depends(require(Role.ADMIN)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    await run_in_threadpool(lambda: state.store.delete_version(name, number, actor=principal.name))
    return JSONResponse({"deleted": name, "version": number})
