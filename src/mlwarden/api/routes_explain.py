"""One prediction explained: each feature's contribution to a version's answer for an instance
(``POST /v1/models/{name}/explain``, :mod:`mlwarden.serving.explain`)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from mlwarden.api.deps import Principal, ServerState, as_object, json_body, require, server
from mlwarden.api.openapi import json_body_doc
from mlwarden.api.routes_models import pydantic_error
from mlwarden.domain import Role
from mlwarden.errors import InvalidInput

router = APIRouter(tags=["predict"])

REFERENCE_RECORDS = 1_000  # recent inputs taken as the reference when a version has no sample


class ExplainRequest(BaseModel):
    """One instance to explain, and optionally the version and the method."""

    instance: dict[str, Any] = Field(description="the features of one instance, as predicted")
    version: int | None = Field(
        default=None, ge=1, description="the version to explain; the live one by default"
    )
    method: Literal["auto", "shapley", "occlusion"] = Field(
        default="auto",
        description="exact Shapley values against the reference point (up to 10 features; "
        "auto picks them when they fit) or occlusion (each feature alone set to its reference)",
    )


def reference_rows(state: ServerState, model: str, version: int | None) -> list[dict[str, Any]]:
    """The version's training sample, else the model's newest recorded inputs."""
    store = state.store
    if version is None:
        deployment = store.get_deployment(model)
        version = None if deployment is None else deployment.live_version
    if version is not None:
        sample = store.reference_sample(model, version)
        if sample:
            return sample
    recent = store.fetch_records(
        model, limit=REFERENCE_RECORDS, newest_first=True, answers_only=True
    )
    rows = [r["features"] for r in recent if isinstance(r.get("features"), dict)]
    if not rows:
        raise InvalidInput(
            f"nothing to explain against: version {version} of {model!r} has no reference "
            "sample and no inputs were recorded yet",
            model=model,
        )
    return rows


@router.post(
    "/v1/models/{name}/explain",
    summary="Explain one prediction: each feature's contribution",
    description=(
        "Answers the instance with the version (the live one by default) and says how much each "
        "feature moved the answer (the probability of the predicted class, or the predicted "
        "value) away from the answer at the reference point: each numeric feature's mean and "
        "each other feature's most frequent value over the version's training sample (or the "
        "newest recorded inputs). Exact Shapley values up to 10 features (they add up to the "
        "difference), occlusion beyond. Nothing is recorded."
    ),
    openapi_extra=json_body_doc(ExplainRequest),
)
async def explain_prediction(
    name: str,
    request: Request,
    _: Principal = Depends(require(Role.VIEWER)),
    state: ServerState = Depends(server),
) -> JSONResponse:
    body = as_object(await json_body(request), "the request body")
    try:
        asked = ExplainRequest.model_validate(body)
    except ValidationError as exc:
        raise pydantic_error(exc, "request") from exc
    rows = await run_in_threadpool(reference_rows, state, name, asked.version)
    answer = await state.gateway.explain(
        name, asked.instance, rows, version=asked.version, method=asked.method
    )
    return JSONResponse(answer)
