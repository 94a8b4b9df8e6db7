"""What every route shares: the server's components, access control, and body reading.

Access: each route declares the role it needs with ``Depends(require(Role.X))``. A token comes
as ``Authorization: Bearer <token>``; a missing or unknown token is 401, a token whose role is
too low is 403. When ``settings.requires_auth()`` is False (only possible on loopback) every
request acts as the local admin ``local``. While the database is unreachable, tokens checked
valid shortly before keep working (see :class:`TokenCache`); any other token gets 503.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import Scope

from mlwarden.capture.validation import parse_json
from mlwarden.domain import MAX_ID, Role
from mlwarden.errors import Forbidden, InvalidInput, MlwardenError, ServiceUnavailable
from mlwarden.store.writer import is_unreachable

if TYPE_CHECKING:
    from mlwarden.agent.background import BackgroundAgent
    from mlwarden.agent.investigate import InvestigationRunner
    from mlwarden.agent.operations.service import Operations
    from mlwarden.serving.gateway import Gateway
    from mlwarden.serving.metrics import ServerMetrics
    from mlwarden.serving.probe import ProbeManager
    from mlwarden.settings import Settings
    from mlwarden.store import Store
    from mlwarden.store.changes import ChangeListener
    from mlwarden.store.writer import RecordWriter

__all__ = [
    "Principal",
    "RowId",
    "ServerState",
    "Unauthorized",
    "authorize",
    "body_too_large",
    "declared_length",
    "error_response",
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


@dataclass(slots=True)
class _Checked:
    principal: Principal | None  # None: the database said the token is unknown or revoked
    checked_at: float  # when the database said so (monotonic)
    recheck_at: float  # trusted until then


class TokenCache:
    """Remembers what the database said about each token, so predict rarely waits on it.

    A token is checked again ``ttl_s`` after its last check. When that check cannot reach the
    database, a token the database called valid less than ``outage_grace_s`` ago stays valid
    (serving goes on through an outage), asked about again at most every ``retry_s``; a token
    it never called valid gets 503, never access. Revoking a token through this server forgets
    it at once; a revocation made elsewhere takes effect at the next check that reaches the
    database: within ``ttl_s``, or within ``retry_s`` of the database answering again.
    """

    # entries for tokens the database does not know, kept at most (a flood of random tokens
    # must not push out the valid ones, which serving needs during an outage)
    MAX_UNKNOWN = 10_000

    def __init__(
        self, ttl_s: float = 10.0, outage_grace_s: float = 3_600.0, retry_s: float = 1.0
    ) -> None:
        self.ttl_s = ttl_s
        self.outage_grace_s = outage_grace_s
        self.retry_s = retry_s
        self._entries: dict[str, _Checked] = {}
        self._inflight: dict[str, asyncio.Future[tuple[str, Role] | None]] = {}
        self._lock = threading.Lock()
        # bumped by clear(): an answer read before a clear is not kept after it
        self._generation = 0

    async def principal(
        self, token: str, lookup: Callable[[str], tuple[str, Role] | None]
    ) -> Principal | None:
        """Who ``token`` is (None: unknown or revoked), asking ``lookup`` (the database) when
        the cached answer is too old; ``ServiceUnavailable`` when it cannot be asked and the
        token was not valid recently."""
        key = hashlib.sha256(token.encode()).hexdigest()
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and now < entry.recheck_at:
            return entry.principal
        # concurrent requests with one token share one database check
        check = self._inflight.get(key)
        generation = self._generation
        if check is None:
            check = asyncio.ensure_future(run_in_threadpool(lookup, token))
            self._inflight[key] = check
            check.add_done_callback(lambda _: self._inflight.pop(key, None))
        try:
            found = await asyncio.shield(check)
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            entry = self._entries.get(key)
            if (
                entry is None
                or entry.principal is None
                or (now - entry.checked_at > self.outage_grace_s)
            ):
                raise ServiceUnavailable(
                    "cannot check this token: the database is unreachable; retry later"
                ) from None
            entry.recheck_at = now + self.retry_s
            return entry.principal
        principal = None if found is None else Principal(found[0], found[1])
        self._put(key, principal, fresh=generation == self._generation)
        return principal

    def _put(self, key: str, principal: Principal | None, *, fresh: bool = True) -> None:
        now = time.monotonic()
        with self._lock:
            entries = self._entries
            if principal is None and len(entries) > self.MAX_UNKNOWN:
                for stale in [k for k, e in entries.items() if e.principal is None]:
                    del entries[stale]
            # an answer that a change overtook is used once and asked again next time
            entries[key] = _Checked(principal, now, now + self.ttl_s if fresh else now)

    def forget(self, name: str) -> None:
        """Drop the tokens named ``name`` (revoked through this server)."""
        with self._lock:
            doomed = [
                key
                for key, entry in self._entries.items()
                if entry.principal is not None and entry.principal.name == name
            ]
            for key in doomed:
                del self._entries[key]

    def set_ttl(self, ttl_s: float) -> None:
        """Trust answers ``ttl_s`` from now on, those already cached included (shortened when
        change notifications stop arriving)."""
        with self._lock:
            self.ttl_s = ttl_s
            latest = time.monotonic() + ttl_s
            for entry in self._entries.values():
                entry.recheck_at = min(entry.recheck_at, latest)

    def clear(self) -> None:
        """Forget every answer (a token changed somewhere): each is asked again when used."""
        with self._lock:
            self._generation += 1
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
    # the listener of other replicas' changes (PostgreSQL) and the agent of this server, if any
    changes: ChangeListener | None = None
    agent: BackgroundAgent | None = None
    # the investigations of models by URL that this server runs (``POST /v1/investigations``)
    investigations: InvestigationRunner | None = None

    def operations(self, actor: str) -> Operations:
        """The operations service for one caller: this server's store and settings (its
        configured policy: the one its agent holds when one runs inside, which stays the last
        valid one while the file does not validate), the caller as actor, and the gateway's
        cached route dropped at each change. The API and the dashboard change models only
        through it."""
        # imported at the first change, not with every route: a server that only serves
        # predictions never needs it, nor the remedies it brings (docs/benchmarks.md, "Gateway
        # overhead")
        from mlwarden.agent.operations.service import Operations

        return Operations(
            self.store,
            actor=actor,
            policy=None if self.agent is None else self.agent.agent.policy,
            settings=self.settings,
            invalidate=self.gateway.invalidate,
        )

    def replica(self) -> dict[str, Any]:
        """What tells this server process apart from the other replicas of its database."""
        notified = self.changes is not None and self.changes.listening.is_set()
        role = "off" if self.agent is None else "leader" if self.agent.leading else "standby"
        return {"pid": os.getpid(), "caches": "notified" if notified else "polling", "agent": role}

    def gateways(self) -> list[Gateway]:
        """Every gateway of this server: production's and those of other environments."""
        # a copy: the change listener's thread calls this while requests may add one
        return [self.gateway, *self.environments.copy().values()]

    def gateway_for(self, environment: str | None) -> Gateway:
        """The gateway routing ``environment``'s deployment (production by default)."""
        if environment in (None, "", self.gateway.environment):
            return self.gateway
        if not environment.replace("-", "").replace("_", "").isalnum() or len(environment) > 32:
            raise InvalidInput(f"invalid environment name {environment!r}")
        gateway = self.environments.get(environment)
        if gateway is None:
            from mlwarden.serving.gateway import Gateway

            gateway = Gateway(
                self.store,
                self.writer,
                self.settings,
                metrics=self.metrics,
                environment=environment,
                refresh_s=self.gateway.refresh_s,
            )
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
    principal = await state.tokens.principal(token, state.store.authenticate)
    if principal is None:
        raise Unauthorized("invalid or revoked token")
    return principal


async def authorize(request: Request, state: ServerState, role: Role) -> Principal:
    """The caller, once authenticated and checked to have at least ``role`` (401/403)."""
    principal = await _authenticate(request, state)
    if not principal.role.allows(role):
        raise Forbidden(
            f"this needs the {role.value} role; token {principal.name!r} is {principal.role.value}",
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


def error_response(status: int, message: str, detail: dict[str, Any] | None = None) -> JSONResponse:
    """Every error's body: ``{"error": message, "detail": {...}}`` with ``status``."""
    return JSONResponse({"error": message, "detail": detail or {}}, status_code=status)


def body_too_large(limit: int) -> JSONResponse:
    """The 413 of a body above ``limit`` bytes (the ``max_request_bytes`` setting)."""
    mib = limit / (1024 * 1024)
    return error_response(
        413,
        f"request body too large: the limit is {limit} bytes ({mib:.1f} MiB); send smaller batches",
        {"limit_bytes": limit},
    )


def declared_length(scope: Scope) -> int:
    """The request's ``Content-Length`` (0 when absent or not a number)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
