"""The command line starts without the data and model libraries: a command imports what it
uses when it runs, so ``mlwarden --help``, ``mlwarden agent ...`` or a typo answer at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_a_setting_that_does_not_validate_is_named_before_any_command_starts(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "MLWARDEN_UI_REFRESH_S": "0",
        "MLWARDEN_PORT": "eighty",
        "MLWARDEN_DATA_DIR": str(data_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "mlwarden.cli.main", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "error: MLWARDEN_PORT='eighty': Input should be a valid integer, "
        "unable to parse string as an integer",
        "error: MLWARDEN_UI_REFRESH_S='0': Input should be greater than or equal to 0.2",
    ]
    assert "Traceback" not in done.stdout + done.stderr
    assert not data_dir.exists()  # nothing started, nothing created
