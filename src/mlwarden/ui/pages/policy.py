"""The agent's policy, read-only: the effective one (the configured file merged over the
bundled default), what the file changes, each model's overrides, and the change history the
agent records in the audit log."""

from __future__ import annotations

import yaml
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response

from mlwarden.api.deps import ServerState, server
from mlwarden.api.routes_policy import policy_view
from mlwarden.errors import InvalidInput
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
    from mlwarden.agent.policy_history import effective_policy, policy_history

    view = policy_view(state)
    policy = view.policy
    if policy is None or (view.problem is not None and state.agent is None):
        # no agent inside keeps an older one: the page says what is wrong with the file
        return error_page(request, session, view.problem or InvalidInput("no policy"))
    effective = effective_policy(policy)
    return render(
        request,
        session,
        "policy.html",
        source=view.source,
        # the file changed into one that does not validate: the agent keeps the one shown
        problem=view.summary() if view.problem is not None else None,
        file_changes=_yaml(policy.raw) if policy.raw else "",
        defaults=_yaml(effective["defaults"]),
        models={name: _yaml(p) for name, p in effective["models"].items()},
        history=policy_history(state.store),
    )
