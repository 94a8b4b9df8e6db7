"""The ``mlwarden`` command line (the console script's entry point): the app of ``cli.app`` with
every command module's commands registered on it."""

from __future__ import annotations

import sys

# Importing a command module registers its commands; this order is their order in ``--help``.
# ``mlwarden serve`` registers only its own: the server process lives on with whatever the
# command line imported, and the other commands' modules (the lake and Parquet, backtests,
# demos, reports: about 5 MB resident) are nothing it uses.
# isort: off
if sys.argv[1:2] == ["serve"]:
    from mlwarden.cli import serve
else:
    from mlwarden.cli import agent, serve, diagnose, investigate, assistant, simulate  # noqa: F401
    from mlwarden.cli import lake, backtest, demo, report, registry, observe  # noqa: F401

# isort: on
from mlwarden.cli.app import app

__all__ = ["app"]

if __name__ == "__main__":
    # `spark-submit .../mlwarden/cli/main.py profile --engine spark ...` runs a file, not the
    # console script (docs/deploy.md)
    app()
