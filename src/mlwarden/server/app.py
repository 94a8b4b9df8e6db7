"""The FastAPI application: ``create_app(settings, store)``, and ``create_app_from_environment``
(the factory each ``mlwarden serve --workers N`` process builds its app with).

The lifespan starts the record writer, the gateway, the probe manager, the runner of
investigations by URL (``agent.investigate``) and the dashboard's warmer of open incidents'
diagnoses (:mod:`mlwarden.ui.report_warmer`), and on shutdown stops probes and investigations
(each keeps what it collected), lets shadow copies finish and flushes the writer, so no record
is lost. On
PostgreSQL it also listens for the change notifications of other replicas
(:func:`follow_changes`). Every
:class:`~mlwarden.errors.MlwardenError` becomes ``{"error": message, "detail": {...}}`` with the
error family's HTTP status; so do FastAPI's own validation errors and oversized bodies.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlwarden import __version__, heap
from mlwarden.agent.investigate import InvestigationRunner
from mlwarden.agent.metrics import FleetCollector
from mlwarden.api import (
    routes_agent,
    routes_assistant,
    routes_capture,
    routes_deploy,
    routes_diagnose,
    routes_explain,
    routes_investigations,
    routes_models,
    routes_policy,
    routes_predict,
    routes_system,
)
from mlwarden.api.deps import (
    ServerState,
    TokenCache,
    body_too_large,
    declared_length,
    error_response,
)
from mlwarden.api.openapi import describe, install_docs
from mlwarden.api.routes_models import pydantic_error
from mlwarden.capture.validation import printable
from mlwarden.errors import MlwardenError
from mlwarden.serving.gateway import Gateway
from mlwarden.serving.metrics import ServerMetrics
from mlwarden.serving.probe import ProbeManager
from mlwarden.settings import Settings
from mlwarden.store import Store
from mlwarden.store.changes import ChangeListener
from mlwarden.store.writer import RecordWriter, is_unreachable
from mlwarden.ui.report_cache import server_diagnoses
from mlwarden.ui.report_warmer import DiagnosisWarmer
from mlwarden.ui.routes import mount_ui

__all__ = ["create_app", "create_app_from_environment", "follow_changes"]

log = logging.getLogger(__name__)


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse bodies above ``limit`` bytes while reading them (413), not after buffering.

    A declared ``Content-Length`` above the limit is refused before reading anything; a body
    sent in chunks is counted as it arrives and cut off as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_length(scope) > self.limit:
            await body_too_large(self.limit)(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await body_too_large(self.limit)(scope, receive, send)


class MlwardenApp(FastAPI):
    """FastAPI, with ``POST /v1/models/{name}/predict`` answered ahead of its middleware stack.

    The predict endpoint is the hot path: :func:`routes_predict.serve_predict` takes it
    straight from the server, with the same body limit and the same exception handlers as
    every other route. Everything else goes through FastAPI as usual.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            name = routes_predict.predict_model(path)
            if name is not None:
                scope["app"] = self
                await routes_predict.serve_predict(self, scope, receive, send, name)
                return
        await super().__call__(scope, receive, send)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MlwardenError)
    async def _mlwarden_error(request: Request, exc: MlwardenError) -> JSONResponse:
        state: ServerState | None = getattr(request.app.state, "mlwarden", None)
        if state is not None:
            state.metrics.http_errors.labels(str(exc.status_code)).inc()
        detail = {k: v for k, v in exc.detail.items()}
        response = error_response(exc.status_code, exc.message, detail)
        if exc.status_code == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            errors.append(
                {
                    "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
                    "message": err.get("msg", ""),
                    "received": printable(err.get("input")),
                }
            )
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        message = f"invalid request: {first['field'] or 'body'}: {first['message']}"
        return error_response(422, message, {"errors": errors})

    @app.exception_handler(ValidationError)
    async def _model_error(request: Request, exc: ValidationError) -> JSONResponse:
        # a body a route validated by hand with a pydantic model: the same 422 as FastAPI's own
        error = pydantic_error(exc, "request")
        return error_response(error.status_code, error.message, error.detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        if exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_unreachable(exc):
            log.warning("database unreachable on %s %s", request.method, request.url.path)
            return error_response(503, "the database is unreachable; retry later")
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


def follow_changes(state: ServerState) -> ChangeListener | None:
    """Keep this replica's caches in step with every other replica of a PostgreSQL store.

    A change of a model or its deployment made anywhere (another replica, the leader agent,
    SQL) drops that model's cached route in every gateway of this server, a change of a token
    drops the cached token checks, as soon as PostgreSQL delivers the notification. While
    notifications arrive, cached copies are read again only every ``notified_cache_s``; while
    they do not (connection lost), the gateways poll every second and tokens every
    ``token_cache_ttl_s`` as a single server does, and everything is read again on reconnect.
    None on SQLite: one process, polling as before.
    """
    store, settings = state.store, state.settings
    if store.dialect != "postgresql":
        return None

    def on_change(kind: str, name: str) -> None:
        if kind == "token":
            state.tokens.clear()
            return
        for gateway in state.gateways():
            gateway.invalidate(name)

    def timing(notified: bool) -> None:
        refresh = settings.notified_cache_s if notified else Gateway.POLL_S
        for gateway in state.gateways():
            gateway.refresh_s = refresh
        state.tokens.set_ttl(settings.notified_cache_s if notified else settings.token_cache_ttl_s)

    def on_reset() -> None:
        timing(True)
        state.tokens.clear()
        for gateway in state.gateways():
            gateway.invalidate()

    return ChangeListener(
        store.engine.url, on_change, on_reset, on_lost=lambda: timing(False)
    ).start()


def create_app_from_environment() -> Any:
    """The app of one worker process, configured by the ``MLWARDEN_*`` environment (what
    ``mlwarden serve --workers N`` sets for its workers, which import this by name)."""
    return create_app(Settings())


def create_app(settings: Settings | None = None, store: Any | None = None) -> Any:
    """Build the mlwarden server app. ``store`` defaults to ``Store.from_settings(settings)``."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owns_store = store is None
        opened = Store.from_settings(settings) if store is None else store
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        writer = RecordWriter.from_settings(opened, settings)
        metrics = ServerMetrics()
        metrics.registry.register(FleetCollector(opened))
        gateway = Gateway(opened, writer, settings, metrics=metrics)
        gateway.start_warming()
        probes = ProbeManager(opened, writer, settings, metrics=metrics)
        app.state.mlwarden = ServerState(
            settings=settings,
            store=opened,
            writer=writer,
            gateway=gateway,
            metrics=metrics,
            tokens=TokenCache(settings.token_cache_ttl_s, settings.token_outage_grace_s),
            probes=probes,
            auth_required=settings.requires_auth(),
            investigations=InvestigationRunner(opened, settings),
        )
        if settings.bootstrap_admin_token:
            opened.ensure_admin_token("bootstrap-admin", settings.bootstrap_admin_token)
        listener = app.state.mlwarden.changes = follow_changes(app.state.mlwarden)
        warmer = (
            DiagnosisWarmer(
                opened, server_diagnoses(app.state.mlwarden), interval_s=settings.agent_interval_s
            ).start()
            if settings.warm_diagnoses
            else None
        )
        # imported only when it runs here: the agent brings the monitor, the detectors and
        # Polars, tens of MB a gateway-only server (``--no-agent``) does not need
        if settings.agent_in_server:
            from mlwarden.agent.background import BackgroundAgent
        agent = (
            BackgroundAgent(
                opened, settings, on_pass=None if warmer is None else warmer.wake
            ).start()
            if settings.agent_in_server
            else None
        )
        app.state.mlwarden.agent = agent
        app.state.diagnosis_warmer = warmer
        # what the server holds from its start (about 240,000 objects) is walked by no later
        # full collection: one would walk only what serving made since
        if settings.gc_freeze:
            heap.freeze()
        try:
            yield
        finally:
            if settings.gc_freeze:
                heap.unfreeze()
            if agent is not None:
                agent.stop()
            if warmer is not None:
                warmer.stop()
            server_diagnoses(app.state.mlwarden).close()
            if listener is not None:
                listener.stop()
            probes.stop_all()
            investigations = app.state.mlwarden.investigations
            if investigations is not None:
                investigations.stop()
            await gateway.aclose()
            for other in app.state.mlwarden.environments.values():
                await other.aclose()
            writer.close()
            metrics.close()
            if owns_store:
                opened.close()

    app = MlwardenApp(
        title="mlwarden",
        version=__version__,
        description="Serve, watch and heal machine-learning models in production.",
        lifespan=lifespan,
        # served by install_docs instead: closed like the API unless settings open them
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.openapi = lambda: describe(app, settings.requires_auth())  # type: ignore[method-assign]
    install_docs(app)
    _install_error_handlers(app)
    # predict first: routes are matched in order, and it is the one on the hot path
    for module in (
        routes_predict,
        routes_system,
        routes_models,
        routes_deploy,
        routes_capture,
        routes_diagnose,
        routes_explain,
        routes_investigations,
        routes_agent,
        routes_policy,
        routes_assistant,
    ):
        app.include_router(module.router)
    mount_ui(app, on_first_use=True)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_request_bytes)
    return app
