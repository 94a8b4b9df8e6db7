"""What every route shares: the server's components, access control, and body reading.

Access: each route declares the role it needs with ``Depends(require(Role.X))``. A token comes
as ``Authorization: Bearer <token>``; a missing or unknown token is 401, a token whose role is
too low is 403. When ``settings.requires_auth()`` is False (only possible on loopback) every
request acts as the local admin ``local``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Path, Request

from mlwarden.capture.validation import parse_json
from mlwarden.domain import MAX_ID, Role
from mlwarden.errors import Forbidden, InvalidInput, MlwardenError

if TYPE_CHECKING:
    from mlwarden.capture.probe import ProbeManager
    from mlwarden.serving.gateway import Gateway
    from mlwarden.serving.metrics import ServerMetrics
    from mlwarden.settings import Settings
    from mlwarden.store import Store
    from mlwarden.store.writer import RecordWriter

__all__ = [
    "Principal",
    "RowId",
    "ServerState",
    "Unauthorized",
    "authorize",
    "json_body",
    "require",
    "server",
    "viewer_unless_public",
]

LOCAL_ACTOR = "local"

# A row id or version number in a path (see domain.MAX_ID); the bound is in the OpenAPI document
RowId = Annotated[int, Path(ge=0, le=MAX_ID)]


class Unauthorized(MlwardenError):
    """No token, or a token we do not know (HTTP 401)."""

    status_code = 401


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name (the actor in the audit log) and its role."""

    name: str
    role: Role


class TokenCache:
    """Remembers authenticated tokens for a few seconds so predict never waits on the database.

    Revoking a token through this server clears the cache at once; a revocation made elsewhere
    takes effect within ``ttl_s``.
    """

    def __init__(self, ttl_s: float = 10.0) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> tuple[bool, Principal | None]:
        key = hashlib.sha256(token.encode()).hexdigest()
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, token: str, principal: Principal | None) -> None:
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            if len(self._entries) > 10_000:  # bound memory against random-token floods
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl_s, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass
class ServerState:
    """The components one app runs with, kept on ``app.state.mlwarden``."""

    settings: Settings
    store: Store
    writer: RecordWriter
    gateway: Gateway
    metrics: ServerMetrics
    tokens: TokenCache
    probes: ProbeManager
    auth_required: bool
    # gateways of other deployment targets (e.g. "staging"), made on first use
    environments: dict[str, Gateway] = field(default_factory=dict)

    def gateway_for(self, environment: str | None) -> Gateway:
        """The gateway routing ``environment``'s deployment (production by default)."""
        if environment in (None, "", self.gateway.environment):
            return self.gateway
        if not environment.replace("-", "").replace("_", "").isalnum() or len(environment) > 32:
            raise InvalidInput(f"invalid environment name {environment!r}")
        gateway = self.environments.get(environment)
        if gateway is None:
            from mlwarden.serving.gateway import Gateway

            gateway = Gateway(self.store, self.writer, self.settings, metrics=self.metrics,
                              environment=environment)
            self.environments[environment] = gateway
        return gateway


async def server(request: Request) -> ServerState:
    """The :class:`ServerState` of the app serving ``request``.

    Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, which would
    cost a thread hop on every request.
    """
    state: ServerState = request.app.state.mlwarden
    return state


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


async def _authenticate(request: Request, state: ServerState) -> Principal:
    if not state.auth_required:
        return Principal(LOCAL_ACTOR, Role.ADMIN)
    token = _bearer(request)
    if token is None:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    cached, principal = state.tokens.get(token)
    if not cached:
        from starlette.concurrency import run_in_threadpool

        found = await run_in_threadpool(state.store.authenticate, token)
        principal = None if found is None else Principal(found[0], found[1])
        state.tokens.put(token, principal)
    if principal is None:
        raise Unauthorized("invalid or revoked token")
    return principal


async def authorize(request: Request, state: ServerState, role: Role) -> Principal:
    """The caller, once authenticated and checked to have at least ``role`` (401/403)."""
    principal = await _authenticate(request, state)
    if not principal.role.allows(role):
        raise Forbidden(
            f"this needs the {role.value} role; token {principal.name!r} is "
            f"{principal.role.value}",
            needed=role.value,
            role=principal.role.value,
        )
    return principal


async def viewer_unless_public(request: Request, state: ServerState, public: bool) -> None:
    """Let anyone read an endpoint the settings opened; otherwise only a viewer or above."""
    if not public:
        await authorize(request, state, Role.VIEWER)


def require(role: Role) -> Callable[..., Any]:
    """A dependency that authenticates the caller and checks it has at least ``role``."""

    async def dependency(request: Request, state: ServerState = Depends(server)) -> Principal:
        return await authorize(request, state, role)

    dependency.__name__ = f"require_{role.value}"
    return dependency


async def json_body(request: Request) -> Any:
    """The request body parsed as JSON (NaN/Infinity refused); 400 when it is empty."""
    body = await request.body()
    if not body.strip():
        raise InvalidInput("the request body is empty; send a JSON document")
    return parse_json(body)


def as_object(body: Any, what: str) -> dict[str, Any]:
    """``body`` when it is a JSON object, else a clear 422."""
    if not isinstance(body, dict):
        raise InvalidInput(f"{what} must be a JSON object, received {type(body).__name__}")
    return body
