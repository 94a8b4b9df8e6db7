"""The one Typer app of the ``mlwarden`` command line; each command module adds its commands to
it with ``@app.command()``, and ``cli.main`` imports them all."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from mlwarden import __version__
from mlwarden.settings import Settings

app = typer.Typer(
    name="mlwarden",
    help="mlwarden: an autonomous reliability engineer for ML models in production.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """mlwarden: an autonomous reliability engineer for ML models in production."""
    # Every command reads its settings from MLWARDEN_* variables somewhere on its way: one
    # that does not validate is named here, in one line each, before any command starts.
    try:
        Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "MLWARDEN_" + "_".join(str(part) for part in error["loc"]).upper()
            typer.echo(f"error: {name}={error['input']!r}: {error['msg']}", err=True)
        raise typer.Exit(2) from None


@app.command()
def version() -> None:
    """Print the installed mlwarden version."""
    typer.echo(__version__)
