"""The ``mlwarden`` command line: one Typer app, one module per group of commands."""

from __future__ import annotations

import typer

from mlwarden import __version__

app = typer.Typer(
    name="mlwarden",
    help="mlwarden: an autonomous reliability engineer for ML models in production.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """mlwarden: an autonomous reliability engineer for ML models in production."""


@app.command()
def version() -> None:
    """Print the installed mlwarden version."""
    typer.echo(__version__)


# Command modules register themselves on `app` when imported; keep this list explicit.
# (Each module defines its commands with `@app.command()` on the app imported from here.)
def _register_commands() -> None:
    import importlib

    for module in _COMMAND_MODULES:
        importlib.import_module(f"mlwarden.cli.{module}")


_COMMAND_MODULES: list[str] = [
    "agent",
    "serve",
    "diagnose",
    "assistant",
    "simulate",
    "backtest",
    "demo",
    "report",
    "registry",
    "observe",
]

_register_commands()
