"""HTTP routes of the incident assistant: ``POST /v1/diagnose`` and ``GET /v1/diagnose/scenarios``.

Only the router lives here; the application mounts it (``app.include_router(router)``).
The response of ``POST /v1/diagnose`` is the CLI ``--json`` contract plus ``facts`` (what was
read from the text) and ``triage`` (the generic checklist, filled when nothing matched).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, model_validator

from mlwarden.diagnose.assistant import (
    MAX_TEXT_CHARS,
    diagnose_scenario,
    diagnose_text,
    list_scenarios,
)
from mlwarden.errors import MlwardenError

router = APIRouter(prefix="/v1/diagnose", tags=["diagnose"])


class DiagnoseRequest(BaseModel):
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    scenario: str | None = None
    top: int = Field(default=3, ge=1, le=10)
    features: list[str] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _one_of(self) -> DiagnoseRequest:
        if (self.text is None) == (self.scenario is None):
            raise ValueError("send exactly one of 'text' or 'scenario'")
        return self


@router.post("")
def post_diagnose(request: DiagnoseRequest) -> dict[str, Any]:
    """Ranked scenarios for a description (or one predefined scenario)."""
    try:
        if request.scenario is not None:
            answer = diagnose_scenario(request.scenario)
        else:
            answer = diagnose_text(request.text or "", limit=request.top,
                                   known_features=request.features)
    except MlwardenError as exc:
        raise HTTPException(status_code=exc.status_code, detail=exc.message) from exc
    return {**answer.public(), "facts": answer.facts.model_dump(), "triage": answer.triage}


@router.get("/scenarios")
def get_scenarios() -> list[dict[str, str]]:
    """The predefined scenarios: id, title, base severity and summary, sorted by id."""
    return list_scenarios()
