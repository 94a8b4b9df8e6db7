"""The one Typer app of the ``mlwarden`` command line; each command module adds its commands to
it with ``@app.command()``, and ``cli.main`` imports them all."""

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
