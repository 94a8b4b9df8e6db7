"""``mlwarden serve`` (the HTTP server) and ``mlwarden tokens`` (API tokens)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from mlwarden.cli.app import app
from mlwarden.domain import Role
from mlwarden.errors import MlwardenError
from mlwarden.settings import Settings, is_loopback

tokens_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


def _settings(
    host: str | None = None,
    port: int | None = None,
    data_dir: Path | None = None,
    database_url: str | None = None,
) -> Settings:
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    return Settings(**overrides)  # type: ignore[arg-type]


def _open_store(data_dir: Path | None, database_url: str | None) -> Any:
    from mlwarden.store import Store

    return Store.from_settings(_settings(data_dir=data_dir, database_url=database_url))


@contextmanager
def _errors() -> Iterator[None]:
    """Print an mlwarden error as one clear line and exit 1, instead of a traceback."""
    try:
        yield
    except MlwardenError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to bind (default 127.0.0.1: loopback only)."),
    port: int = typer.Option(None, help="Port (default 8000)."),
    data_dir: Path = typer.Option(None, help="Folder for SQLite, artifacts and journals."),
    database_url: str = typer.Option(None, help="SQLAlchemy URL, e.g. postgresql://…/mlwarden."),
    log_level: str = typer.Option("info", help="Uvicorn log level."),
    agent: bool = typer.Option(True, help="Run the agent loop (monitor, decide, act) too."),
    workers: int = typer.Option(
        1,
        min=1,
        max=64,
        help="Server processes on this host sharing the port (PostgreSQL only; one agent leads).",
    ),
) -> None:
    """Start the mlwarden server (API, gateway, dashboard, metrics, agent).

    With PostgreSQL, any number of these (``--workers`` processes here, and replicas on other
    hosts) serve one database: each follows the others' changes, and one agent leads while the
    others stand by to take over.
    """
    import uvicorn

    from mlwarden.server import create_app
    from mlwarden.serving.metrics import MULTIPROC_ENV, fresh_multiprocess_dir

    settings = _settings(host, port, data_dir, database_url).model_copy(
        update={"agent_in_server": agent, "gc_freeze": True}
    )
    if workers > 1 and not settings.resolved_database_url.startswith("postgresql"):
        typer.echo(
            "error: --workers needs PostgreSQL (--database-url or MLWARDEN_DATABASE_URL): "
            "SQLite serves one process",
            err=True,
        )
        raise typer.Exit(2)
    if settings.requires_auth():
        typer.echo("authentication: API tokens required (create one: mlwarden tokens create)")
    elif is_loopback(settings.host):
        typer.echo("authentication: disabled (loopback only)")
    typer.echo(
        f"mlwarden serving on http://{settings.host}:{settings.port}"
        + (f" with {workers} worker processes" if workers > 1 else "")
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        "access_log": False,
    }
    if workers == 1:
        uvicorn.run(create_app(settings), workers=1, **options)
        return
    # each worker is a new process that builds its own app from the environment; their
    # metrics go to files in a fresh folder that whichever answers /metrics sums
    os.environ.update(_environment(settings))
    metrics_dir = fresh_multiprocess_dir(settings.data_dir)
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    try:
        uvicorn.run(
            "mlwarden.server.app:create_app_from_environment",
            factory=True,
            workers=workers,
            **options,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _environment(settings: Settings) -> dict[str, str]:
    """The ``MLWARDEN_*`` variables that make ``Settings()`` in a worker equal ``settings``
    where the command line changed them."""
    chosen = {
        "host": settings.host,
        "port": settings.port,
        "data_dir": settings.data_dir,
        "database_url": settings.database_url,
        "agent_in_server": settings.agent_in_server,
        "gc_freeze": settings.gc_freeze,
    }
    return {
        f"MLWARDEN_{name.upper()}": str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in chosen.items()
        if value is not None
    }


@tokens_app.command("create")
def create_token(
    name: str = typer.Argument(..., help="A name for the token (the actor in the audit log)."),
    role: Role = typer.Option(Role.VIEWER, help="viewer, operator or admin."),
    data_dir: Path = typer.Option(None, help="Folder of the SQLite database."),
    database_url: str = typer.Option(None, help="SQLAlchemy URL of the database."),
) -> None:
    """Create an API token and print it (it is shown only this once)."""
    with _errors(), _open_store(data_dir, database_url) as store:
        token = store.create_token(name, role, actor="cli")
    typer.echo(token)


@tokens_app.command("list")
def list_tokens(
    data_dir: Path = typer.Option(None, help="Folder of the SQLite database."),
    database_url: str = typer.Option(None, help="SQLAlchemy URL of the database."),
) -> None:
    """List token names and roles (never the tokens themselves)."""
    with _open_store(data_dir, database_url) as store:
        for token in store.list_tokens():
            state = "revoked" if token["revoked"] else "active"
            typer.echo(f"{token['name']}\t{token['role']}\t{state}")


@tokens_app.command("revoke")
def revoke_token(
    name: str = typer.Argument(..., help="Name of the token to revoke."),
    data_dir: Path = typer.Option(None, help="Folder of the SQLite database."),
    database_url: str = typer.Option(None, help="SQLAlchemy URL of the database."),
) -> None:
    """Revoke an API token."""
    with _errors(), _open_store(data_dir, database_url) as store:
        store.revoke_token(name, actor="cli")
    typer.echo(f"revoked {name}")
