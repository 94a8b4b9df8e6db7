"""The ``mlwarden`` command line (the console script's entry point): the app of ``cli.app`` with
every command module's commands registered on it."""

from __future__ import annotations

# Importing a command module registers its commands; this order is their order in ``--help``.
# isort: off
from mlwarden.cli import agent, serve, diagnose, investigate, assistant, simulate  # noqa: F401
from mlwarden.cli import lake, backtest, demo, report, registry, observe  # noqa: F401

# isort: on
from mlwarden.cli.app import app

__all__ = ["app"]

if __name__ == "__main__":
    # `spark-submit .../mlwarden/cli/main.py profile --engine spark ...` runs a file, not the
    # console script (docs/deploy.md)
    app()
