"""Profiles and backtests over a lake of Parquet files with the Polars engine: the profile of a
lake is the profile of its records, and a lake backtest finds what the in-memory backtest finds
with the same detectors. (The Spark engine against this one: tests/monitor/test_spark.py.)"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mlwarden.cli.main import app
from mlwarden.errors import InvalidInput, ServiceUnavailable
from mlwarden.monitor.backtest import run_backtest
from mlwarden.monitor.engine import MonitorConfig
from mlwarden.monitor.lake import backtest_lake, get_engine, profile_lake
from mlwarden.monitor.window import WindowSpec
from mlwarden.stats.profile import Profile, ProfileLayout

RUNNER = CliRunner()
# the detectors a lake backtest runs: those that read profiles only
PROFILE_DETECTORS = {"feature_drift", "data_quality", "prediction_drift", "prediction_collapse"}


def _files(lake: Path, pattern: str = "date=*/*.parquet") -> pd.DataFrame:
    return pd.concat(
        [pq.read_table(f).to_pandas() for f in sorted(lake.glob(pattern))], ignore_index=True
    )


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, write_lake: Callable[..., Path]) -> Path:
    return write_lake(tmp_path_factory.mktemp("lake") / "logs", days=3, rows=3000, files=2)


def test_a_lake_profile_is_the_profile_of_its_records(
    lake: Path, assert_same_json: Callable[[object, object], None]
) -> None:
    records = _files(lake)
    whole = profile_lake(str(lake / "date=*/*.parquet"))
    assert whole.rows == len(records) == 9000
    assert_same_json(whole.to_dict(), Profile.reference(records).to_dict())
    # bins from the first records in file order (here across the first two files), every
    # record counted on them
    part = profile_lake(str(lake), layout_rows=2000)
    assert part.layout == ProfileLayout.fit(records.head(2000))
    assert part.rows == 9000
    assert_same_json(part.to_dict(), Profile.from_data(records, part.layout).to_dict())


@pytest.mark.parametrize("window", ["1000", "1d"])
def test_a_lake_backtest_finds_what_the_in_memory_backtest_finds(
    lake: Path, tmp_path: Path, window: str
) -> None:
    ref_json = tmp_path / "ref.json"
    made = RUNNER.invoke(
        app,
        [
            "profile",
            "--input",
            str(lake / "date=2026-03-01/*.parquet"),
            "--out",
            str(ref_json),
            "--json",
        ],
    )
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["rows"] == 3000
    out = tmp_path / "bt"
    run = RUNNER.invoke(
        app,
        [
            "backtest",
            "--engine",
            "polars",
            "--reference",
            str(ref_json),
            "--stream",
            str(lake / "date=*/*.parquet"),
            "--window",
            window,
            "--out",
            str(out),
            "--json",
        ],
    )
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)
    found = json.loads((out / "findings.json").read_text())
    assert {"data_drift", "data_quality"} <= set(summary["by_kind"])
    # only the last day drifts and breaks: windows 6-8 of 1000 records, window 2 of 1d
    assert {f["window"] for f in found} <= ({6, 7, 8} if window == "1000" else {2})
    assert (out / "report.html").stat().st_size > 0

    memory = run_backtest(
        _files(lake, "date=2026-03-01/*.parquet"), _files(lake), window=WindowSpec.parse(window)
    )
    expected = [f for f in memory.findings if f.detector in PROFILE_DETECTORS]
    assert summary["windows"] == len(memory.windows)
    assert [
        (f["window"], f["kind"], f["detector"], f["features"], f["statistic"]) for f in found
    ] == [(f.window, f.kind.value, f.detector, f.features, f.statistic) for f in expected]
    assert [f["score"] for f in found] == pytest.approx([f.score for f in expected], rel=1e-9)


def test_count_windows_follow_file_order_across_files(lake: Path) -> None:
    reference = profile_lake(str(lake / "date=2026-03-01/*.parquet"))
    result = backtest_lake(reference, str(lake / "date=*/*.parquet"), 2000)
    assert [w.n for w in result.windows] == [2000, 2000, 2000, 2000, 1000]
    records = _files(lake)
    for w in result.windows:
        rows = records.iloc[w.index * 2000 : (w.index + 1) * 2000]
        assert w.profile is not None
        assert w.profile.features["amount"].nulls == rows["amount"].isna().sum()
    assert any("not run: system, performance" in x for x in result.warnings)
    policy = MonitorConfig(multivariate=True)
    multivariate = backtest_lake(reference, str(lake / "date=*/*.parquet"), 2000, config=policy)
    assert any("not run: domain_classifier, system" in x for x in multivariate.warnings)


def test_a_folder_is_read_as_spark_reads_it(
    tmp_path: Path, write_lake: Callable[..., Path]
) -> None:
    lake = write_lake(tmp_path / "logs", days=1, rows=500, files=1)
    # Spark's own leftovers, which Spark skips: a success marker and a temporary folder
    (lake / "_SUCCESS").write_text("")
    (lake / "_temporary").mkdir()
    pq.write_table(pa.table({"x": [1.0] * 7}), lake / "_temporary" / "part-9.parquet")
    profile = profile_lake(str(lake))
    assert profile.rows == 500
    assert "date" not in profile.features  # no column from the `date=...` folder names


def test_bad_input_is_a_clear_error(lake: Path, tmp_path: Path) -> None:
    def fails(*args: str) -> str:
        result = RUNNER.invoke(app, list(args))
        assert result.exit_code == 2, result.output
        return " ".join(result.stderr.split())

    nothing = str(tmp_path / "none/*.parquet")
    assert "no Parquet file matches" in fails(
        "profile", "--input", nothing, "--out", str(tmp_path / "r.json")
    )
    assert "--engine must be one of polars, spark" in fails(
        "profile", "--input", str(lake), "--out", str(tmp_path / "r.json"), "--engine", "duck"
    )
    assert "needs --engine spark" in fails(
        "profile", "--input", str(lake), "--out", str(tmp_path / "r.json"), "--master", "local"
    )
    stream = str(lake / "date=*/*.parquet")
    assert "--labels needs --engine pandas" in fails(
        "backtest",
        "--engine",
        "polars",
        "--reference",
        stream,
        "--stream",
        stream,
        "--labels",
        stream,
        "--out",
        str(tmp_path / "o"),
    )
    assert "reference profile not found" in fails(
        "backtest",
        "--engine",
        "polars",
        "--reference",
        str(tmp_path / "ref.json"),
        "--stream",
        stream,
        "--out",
        str(tmp_path / "o"),
    )
    untimed = tmp_path / "untimed.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0]}), untimed)
    with pytest.raises(InvalidInput, match="needs readable timestamps"):
        backtest_lake(profile_lake(str(untimed)), str(untimed), "1h")


def test_the_spark_engine_without_the_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, lake: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(ServiceUnavailable, match=r'pip install "mlwarden\[spark\]"'):
        get_engine("spark", master="local[1]")
    result = RUNNER.invoke(
        app,
        ["profile", "--engine", "spark", "--input", str(lake), "--out", str(tmp_path / "r.json")],
    )
    assert result.exit_code == 2
    assert "mlwarden[spark]" in result.stderr
