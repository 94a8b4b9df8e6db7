"""The agent's policy over HTTP: the policy in use and whether the file in place is valid
(``GET /v1/policy``), and one model's overrides (``GET``/``PUT /v1/policy/models/{name}``).

A server whose agent runs inside it reports the policy that agent holds: when the file changed
into one that does not validate, that is the policy read before, and the file's error is shown
beside it (``/health`` too). Without an agent inside, the file is read at each request.

Overrides live where they always did, under ``models`` in the policy file
(``MLWARDEN_AGENT_POLICY``); ``PUT`` writes them there (``agent.policy.write_model_override``:
validated as a whole first, replaced in one step) and the agent inside reads the file at once.
Changing the policy changes what the agent may do without asking anyone, so it needs the admin
role, as registering a model or a token does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from mlwarden.agent.policy import (
    Policy,
    PolicyError,
    configured_policy,
    model_override,
    write_model_override,
)
from mlwarden.agent.policy_history import effective_policy
from mlwarden.api.deps import Principal, ServerState, as_object, json_body, require, server
from mlwarden.api.openapi import body_doc
from mlwarden.domain import Role
from mlwarden.errors import Conflict, InvalidInput

router = APIRouter(tags=["policy"])

POLICY_OVERRIDE = "policy.override"


@dataclass(frozen=True)
class PolicyView:
    """The policy a server acts on and, when the file in place is not it, why."""

    source: str | None  # the configured file; None: the bundled default alone
    policy: Policy | None  # None: no agent inside holds one and the file does not validate
    problem: InvalidInput | None

    def summary(self) -> dict[str, Any]:
        """What ``/health`` and ``GET /v1/policy`` say of it."""
        problems: list[dict[str, Any]] = []
        if isinstance(self.problem, PolicyError):
            problems = [p.model_dump() for p in self.problem.problems]
        elif self.problem is not None:
            problems = [{"line": None, "path": "", "message": self.problem.message}]
        if self.problem is None:
            status = "ok"
        elif self.policy is not None:
            status = "invalid file: the policy read before it stays in use"
        else:
            status = "invalid file"
        return {
            "source": self.source,
            "status": status,
            "error": None if self.problem is None else self.problem.message,
            "problems": problems,
        }


# the file's policy by (path, modification time, size): ``/health`` asks at every probe
_READ: dict[tuple[Any, ...], PolicyView] = {}


def policy_view(state: ServerState) -> PolicyView:
    """The policy of this server: its agent's when one runs inside, else the file's."""
    configured = state.settings.agent_policy
    source = None if configured is None else str(configured)
    if state.agent is not None:
        return PolicyView(source, state.agent.agent.policy, state.agent.policy_problem)
    try:
        stat = None if configured is None else configured.stat()
        key: tuple[Any, ...] = (
            (source,) if stat is None else (source, stat.st_mtime_ns, stat.st_size)
        )
    except OSError:
        key = (source, "unreadable")
    view = _READ.get(key)
    if view is None:
        try:
            view = PolicyView(source, configured_policy(state.settings), None)
        except InvalidInput as exc:
            view = PolicyView(source, None, exc)
        _READ.clear()  # one file per server: only the newest read is kept
        _READ[key] = view
    return view


def _model_body(view: PolicyView, name: str) -> dict[str, Any]:
    policy = view.policy
    return {
        "model": name,
        "source": view.source,
        "override": {} if policy is None else model_override(policy, name),
        "effective": None if policy is None else policy.for_model(name).model_dump(mode="json"),
        "file": view.summary(),
    }


@router.get("/v1/policy", summary="The agent's policy in use, and the file's errors if any")
async def get_policy(
    state: ServerState = Depends(server), _: Principal = Depends(require(Role.VIEWER))
) -> dict[str, Any]:
    view = await run_in_threadpool(policy_view, state)
    effective = None if view.policy is None else effective_policy(view.policy)
    return {**view.summary(), "effective": effective}


@router.get("/v1/policy/models/{name}", summary="One model's policy overrides")
async def get_model_policy(
    name: str,
    state: ServerState = Depends(server),
    _: Principal = Depends(require(Role.VIEWER)),
) -> dict[str, Any]:
    """The model's overrides (what the file sets under ``models.<name>``; {} when none) and
    the policy it gets, merged over the defaults."""
    await run_in_threadpool(state.store.model_id, name)  # 404 for a model that does not exist
    return _model_body(await run_in_threadpool(policy_view, state), name)


@router.put(
    "/v1/policy/models/{name}",
    summary="Set one model's policy overrides (admin)",
    openapi_extra=body_doc(
        {
            "application/json": {
                "type": "object",
                "description": (
                    "The keys of the policy this model changes, as under `models.<name>` in the "
                    'policy file, e.g. `{"mode": "autonomous", "detection": {"drift_psi": 0.3}}`; '
                    "`{}` removes its overrides. Validated with the whole file: 422 names each "
                    "key, the value and what is expected."
                ),
            }
        }
    ),
)
async def put_model_policy(
    name: str,
    body: Any = Depends(json_body),
    state: ServerState = Depends(server),
    principal: Principal = Depends(require(Role.ADMIN)),
) -> dict[str, Any]:
    override = as_object(body, "a model's policy overrides")
    await run_in_threadpool(state.store.model_id, name)
    path = state.settings.agent_policy
    if path is None:
        raise Conflict(
            "no policy file is configured (MLWARDEN_AGENT_POLICY): the bundled default is in "
            "use, and overrides are written to that file; set it and restart the server"
        )

    def write() -> dict[str, Any]:
        before, after = write_model_override(path, name, override)
        state.store.audit(
            principal.name,
            POLICY_OVERRIDE,
            f"{name}/policy",
            {
                "source": str(path),
                "before": model_override(before, name),
                "after": model_override(after, name),
            },
        )
        if state.agent is not None:  # the agent inside acts on it from its next window
            state.agent.reload_policy()
        return _model_body(policy_view(state), name)

    return await run_in_threadpool(write)
