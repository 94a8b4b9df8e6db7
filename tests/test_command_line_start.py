"""The command line starts without the data and model libraries: a command imports what it
uses when it runs, so ``mlwarden --help``, ``mlwarden agent ...`` or a typo answer at once."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "pandas", "polars", "scipy", "sklearn", "sqlalchemy", "mlwarden.monitor.lake")


def test_the_command_line_starts_without_the_data_libraries() -> None:
    probe = (
        "import json, sys; import mlwarden.cli.main; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_every_command_is_listed_and_the_lake_defaults_are_shown() -> None:
    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "mlwarden.cli.main", *args],
            capture_output=True,
            text=True,
            env={"COLUMNS": "200", "PATH": ""},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    listed = run("--help")
    for command in ("serve", "agent", "profile", "backtest", "simulate", "demo", "investigate"):
        assert command in listed
    assert "200000" in run("profile", "--help")  # monitor.lake_options.DEFAULT_LAYOUT_ROWS
