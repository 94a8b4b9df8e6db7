"""The agent's policy, read-only: the effective one (the configured file merged over the
bundled default), what the file changes, each model's overrides, and the change history the
agent records in the audit log."""

from __future__ import annotations

import yaml
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response

from mlwarden.api.deps import ServerState, server
from mlwarden.ui.session import Session
from mlwarden.ui.web import error_page, page_router, page_session, render

router = page_router()


def _yaml(value: object) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False).strip()


@router.get("/policy", response_class=HTMLResponse)
def policy_page(
    request: Request,
    session: Session = Depends(page_session),
    state: ServerState = Depends(server),
) -> Response:
    from mlwarden.agent.policy import PolicyError, configured_policy
    from mlwarden.agent.policy_history import effective_policy, policy_history

    configured = state.settings.agent_policy
    try:
        policy = configured_policy(state.settings)
    except PolicyError as exc:  # the page says what is wrong with the file; the agent would too
        return error_page(request, session, exc)
    effective = effective_policy(policy)
    return render(
        request,
        session,
        "policy.html",
        source=str(configured) if configured else None,
        file_changes=_yaml(policy.raw) if policy.raw else "",
        defaults=_yaml(effective["defaults"]),
        models={name: _yaml(p) for name, p in effective["models"].items()},
        history=policy_history(state.store),
    )
