"""``mlwarden serve`` (the HTTP server) and ``mlwarden tokens`` (API tokens)."""

from __future__ import annotations

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
) -> None:
    """Start the mlwarden server (API, gateway, dashboard, metrics, agent): one Uvicorn worker."""
    import uvicorn

    from mlwarden.server import create_app

    settings = _settings(host, port, data_dir, database_url).model_copy(
        update={"agent_in_server": agent}
    )
    if settings.requires_auth():
        typer.echo("authentication: API tokens required (create one: mlwarden tokens create)")
    elif is_loopback(settings.host):
        typer.echo("authentication: disabled (loopback only)")
    typer.echo(f"mlwarden serving on http://{settings.host}:{settings.port}")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        workers=1,
        log_level=log_level,
        access_log=False,
    )


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
