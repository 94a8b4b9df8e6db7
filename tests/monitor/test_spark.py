"""The Spark engine gives the Polars engine's profiles and findings, on local[2] over 300,000
records: the same profile JSON up to float rounding, the same findings, by time and by count.

One Spark session (a JVM) for the whole module, in one test: under pytest-xdist two tests of
this module could land on two workers and start two JVMs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlwarden.cli.main import app
from mlwarden.errors import InvalidInput
from mlwarden.monitor.lake import backtest_lake, profile_lake
from mlwarden.monitor.spark import SparkEngine, spark_session

RUNNER = CliRunner()
ROWS_PER_DAY = 100_000


def _finding_keys(findings: list[dict]) -> list[tuple]:
    return [
        (f["window"], f["kind"], f["detector"], f["features"], f["statistic"]) for f in findings
    ]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_spark_gives_the_profiles_and_findings_of_polars(
    tmp_path: Path,
    write_lake: Callable[..., Path],
    assert_same_json: Callable[[object, object], None],
) -> None:
    lake = write_lake(tmp_path / "logs", days=3, rows=ROWS_PER_DAY, files=2)
    day_one, stream = str(lake / "date=2026-03-01/*.parquet"), str(lake / "date=*/*.parquet")
    spark = spark_session("local[2]")
    try:
        engine = SparkEngine(spark)
        # A reference from a lake, through the command line: bins from the first 60,000 rows
        # in file order (the first file and part of the second), every row profiled.
        refs = {}
        for name in ("polars", "spark"):
            refs[name] = tmp_path / f"ref-{name}.json"
            extra = ["--master", "local[2]"] if name == "spark" else []
            made = RUNNER.invoke(
                app,
                [
                    "profile",
                    "--engine",
                    name,
                    *extra,
                    "--input",
                    day_one,
                    "--layout-rows",
                    "60000",
                    "--out",
                    str(refs[name]),
                    "--json",
                ],
            )
            assert made.exit_code == 0, made.output
            assert json.loads(made.stdout)["rows"] == ROWS_PER_DAY
        assert_same_json(
            json.loads(refs["spark"].read_text()), json.loads(refs["polars"].read_text())
        )

        # Backtests by time (the command line) and by count (Python), windows across files.
        outs = {}
        for name in ("polars", "spark"):
            outs[name] = tmp_path / f"bt-{name}"
            extra = ["--master", "local[2]"] if name == "spark" else []
            run = RUNNER.invoke(
                app,
                [
                    "backtest",
                    "--engine",
                    name,
                    *extra,
                    "--reference",
                    str(refs["polars"]),
                    "--stream",
                    stream,
                    "--window",
                    "1d",
                    "--out",
                    str(outs[name]),
                    "--json",
                ],
            )
            assert run.exit_code == 0, run.output
        by_time = {n: json.loads((outs[n] / "findings.json").read_text()) for n in outs}
        assert {"data_drift", "data_quality"} <= {f["kind"] for f in by_time["polars"]}
        assert _finding_keys(by_time["spark"]) == _finding_keys(by_time["polars"])
        assert_same_json(
            [f["score"] for f in by_time["spark"]], [f["score"] for f in by_time["polars"]]
        )

        reference = profile_lake(day_one)
        spark_run = backtest_lake(reference, stream, 40_000, engine=engine)
        polars_run = backtest_lake(reference, stream, 40_000)
        assert [w.n for w in spark_run.windows] == [40_000] * 7 + [20_000]
        assert spark_run.summary() == polars_run.summary()
        assert spark_run.findings  # the drifted last day is found
        for ours, theirs in zip(spark_run.windows, polars_run.windows, strict=True):
            assert ours.profile is not None and theirs.profile is not None
            assert_same_json(ours.profile.to_dict(), theirs.profile.to_dict())
            assert_same_json(ours.signals, theirs.signals)
        assert [
            f.model_dump(exclude={"score", "p_value", "evidence"}) for f in spark_run.findings
        ] == [f.model_dump(exclude={"score", "p_value", "evidence"}) for f in polars_run.findings]

        with pytest.raises(InvalidInput, match="Spark cannot read"):
            profile_lake(str(tmp_path / "nowhere" / "*.parquet"), engine=engine)
    finally:
        spark.stop()
