"""HTTP routes of diagnosis from free text (``diagnose.free_text``): ``POST /v1/diagnose`` and
``GET /v1/diagnose/scenarios``.

Only the router lives here; the application mounts it (``app.include_router(router)``).
The response of ``POST /v1/diagnose`` is the CLI ``--json --explain`` contract (each match with
``explain``: the words that led to it, why, and their weight) plus ``facts`` (what was read
from the text) and ``triage`` (the generic checklist, filled when nothing matched).

Both need the viewer role when the server requires tokens: the text is parsed with CPU time of
the server that also answers predictions. The matching runs in the thread pool, so the event
loop keeps serving predictions while a text is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from mlwarden.api.deps import Principal, require
from mlwarden.diagnose.text import MAX_TEXT_CHARS
from mlwarden.domain import Role
from mlwarden.lazy import lazy_module

if TYPE_CHECKING:
    from mlwarden.diagnose.free_text import TextDiagnosis

# imported at the first diagnosis asked for: the playbooks' schema, the matcher and the fact
# extraction are not needed by a server that only serves predictions (docs/benchmarks.md,
# "Gateway overhead")
_free_text = lazy_module("mlwarden.diagnose.free_text")

router = APIRouter(prefix="/v1/diagnose", tags=["diagnose"])

# Feature names are looked up in the text one by one: the count and length bound that work.
MAX_FEATURES = 1000
MAX_FEATURE_CHARS = 200


class DiagnoseRequest(BaseModel):
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    scenario: str | None = Field(default=None, max_length=64)
    top: int = Field(default=3, ge=1, le=10)
    features: list[Annotated[str, Field(max_length=MAX_FEATURE_CHARS)]] = Field(
        default_factory=list, max_length=MAX_FEATURES
    )

    @model_validator(mode="after")
    def _one_of(self) -> DiagnoseRequest:
        if (self.text is None) == (self.scenario is None):
            raise ValueError("send exactly one of 'text' or 'scenario'")
        return self


def _answer(request: DiagnoseRequest) -> TextDiagnosis:
    diagnosis: TextDiagnosis
    if request.scenario is not None:
        diagnosis = _free_text.diagnose_scenario(request.scenario)
    else:
        diagnosis = _free_text.diagnose_text(
            request.text or "", limit=request.top, known_features=request.features
        )
    return diagnosis


@router.post("")
async def post_diagnose(
    request: DiagnoseRequest, _: Principal = Depends(require(Role.VIEWER))
) -> dict[str, Any]:
    """Ranked scenarios for a description (or one predefined scenario)."""
    answer = await run_in_threadpool(_answer, request)
    return {
        **answer.public(explain=True),
        "facts": answer.facts.model_dump(),
        "triage": answer.triage,
    }


@router.get("/scenarios")
async def get_scenarios(_: Principal = Depends(require(Role.VIEWER))) -> list[dict[str, str]]:
    """The predefined scenarios: id, title, base severity and summary, sorted by id."""
    scenarios: list[dict[str, str]] = await run_in_threadpool(_free_text.list_scenarios)
    return scenarios
