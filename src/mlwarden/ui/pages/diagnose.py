"""Free-text or predefined-scenario diagnosis from the playbooks."""

from __future__ import annotations

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from mlwarden.errors import MlwardenError
from mlwarden.ui.session import Session
from mlwarden.ui.web import check_csrf, page_router, page_session, render

router = page_router()


@router.get("/diagnose", response_class=HTMLResponse)
def diagnose_page(request: Request, session: Session = Depends(page_session)) -> Response:
    from mlwarden.diagnose.free_text import list_scenarios

    return render(
        request,
        session,
        "diagnose.html",
        scenarios=list_scenarios(),
        answer=None,
        text="",
        scenario="",
    )


@router.post("/diagnose", response_class=HTMLResponse)
def diagnose_submit(
    request: Request,
    text: str = Form(""),
    scenario: str = Form(""),
    csrf: str = Form(""),
    session: Session = Depends(page_session),
) -> Response:
    from mlwarden.diagnose.free_text import diagnose_scenario, diagnose_text, list_scenarios

    check_csrf(request, session, csrf)
    error = ""
    answer = None
    try:
        if scenario:
            answer = diagnose_scenario(scenario)
        elif text.strip():
            answer = diagnose_text(text)
        else:
            error = "Describe what you see, or pick a predefined scenario."
    except MlwardenError as exc:
        error = exc.message
    return render(
        request,
        session,
        "diagnose.html",
        scenarios=list_scenarios(),
        answer=answer,
        error=error,
        text=text,
        scenario=scenario,
    )
