"""The CLI is a person acting on their own machine: it reads and writes their files by path,
keeps dataset names inside the data directory, and "it" carries from one command to the next."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlwarden.cli.main import app
from mlwarden.settings import get_settings


@pytest.fixture
def runner(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    monkeypatch.setenv("MLWARDEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MLWARDEN_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()  # the CLI reads the environment once per process
    yield CliRunner()
    get_settings.cache_clear()


def test_the_cli_reads_and_writes_local_files_and_remembers_it(
    runner: CliRunner, tmp_path: Path
) -> None:
    source = tmp_path / "mine.csv"
    rows = {"x": range(60), "w": [i % 7 for i in range(60)], "y": [i % 2 for i in range(60)]}
    pd.DataFrame(rows).to_csv(source, index=False)

    uploaded = runner.invoke(app, ["ask", f"upload {source} as mine"])
    assert uploaded.exit_code == 0, uploaded.output
    assert "stored mine v1: 60 rows" in uploaded.output

    out = tmp_path / "exports" / "mine.parquet"
    written = runner.invoke(app, ["ask", f"download it to {out}"])  # "it": the last dataset
    assert written.exit_code == 0, written.output
    assert pd.read_parquet(out).shape == (60, 3)
    default = runner.invoke(app, ["datasets", "download", "mine"])
    assert default.exit_code == 0 and (tmp_path / "mine-v1.csv").exists()

    trained = runner.invoke(app, ["ask", "train a classifier on mine predicting y with logistic"])
    assert trained.exit_code == 0, trained.output
    deployed = runner.invoke(app, ["ask", "deploy it to staging", "--json"])
    assert deployed.exit_code == 0, deployed.output
    assert '"model": "mine-y"' in deployed.output


def test_the_cli_refuses_a_dataset_name_that_leaves_the_data_directory(
    runner: CliRunner, tmp_path: Path
) -> None:
    source = tmp_path / "mine.csv"
    pd.DataFrame({"x": [1, 2, 3]}).to_csv(source, index=False)
    before = sorted(p for p in tmp_path.rglob("*") if "mlwarden.db" not in p.name)
    refused = runner.invoke(app, ["datasets", "upload", str(source), "--name", "../../escape"])
    assert refused.exit_code == 1
    assert "contains a path separator" in refused.output
    after = sorted(p for p in tmp_path.rglob("*") if "mlwarden.db" not in p.name)
    assert [p for p in after if p not in before and not p.is_relative_to(tmp_path / "data")] == []
