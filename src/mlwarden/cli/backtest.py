"""``mlwarden backtest``: every detector over historical logs, to tune a policy first."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from mlwarden.cli.app import app
from mlwarden.cli.lake import engine_progress
from mlwarden.errors import InvalidInput, ServiceUnavailable
from mlwarden.monitor.lake_options import ENGINES


@app.command()
def backtest(
    reference: str = typer.Option(
        ...,
        "--reference",
        help="Reference records (CSV or "
        "Parquet); with --engine polars/spark also a profile JSON "
        "(mlwarden profile) or a Parquet glob.",
    ),
    stream: str = typer.Option(
        ...,
        "--stream",
        help="Logged prediction records (CSV/Parquet); "
        "with --engine polars/spark a Parquet file, folder or glob "
        "('logs/date=*/*.parquet').",
    ),
    out: Path = typer.Option(..., "--out", help="Folder for findings.json and the reports."),
    labels: Path | None = typer.Option(None, "--labels", help="Labels joined to records by id."),
    window: str = typer.Option(
        "1000",
        "--window",
        help="Records per window (1000) or a duration of record time (1h, 30min, 1d).",
    ),
    policy: Path | None = typer.Option(None, "--policy", help="YAML with detection thresholds."),
    as_json: bool = typer.Option(False, "--json", help="Print a summary JSON on stdout."),
    engine: str = typer.Option(
        "pandas",
        "--engine",
        help="pandas: one file in memory, every "
        "detector; polars or spark: a lake of Parquet files profiled "
        "by chunks or Spark partitions, the detectors that read "
        "profiles.",
    ),
    master: str | None = typer.Option(
        None, "--master", help="Spark master URL (with --engine spark)."
    ),
    id_col: str = typer.Option("id", "--id-col", help="Record id column."),
    timestamp_col: str = typer.Option("timestamp", "--timestamp-col", help="Time column."),
    prediction_col: str = typer.Option("prediction", "--prediction-col"),
    score_col: str = typer.Option("score", "--score-col", help="Positive-class score column."),
    proba_prefix: str = typer.Option("proba_", "--proba-prefix", help="Per-class columns."),
    label_col: str = typer.Option("label", "--label-col"),
    latency_col: str = typer.Option("latency_ms", "--latency-col"),
    error_col: str = typer.Option("error", "--error-col"),
) -> None:
    """Run the monitor over a stream of logged predictions, window by window.

    Writes OUT/findings.json (window, kind, features, statistic, score, message per finding),
    OUT/signals.json and a report in OUT/report.md and OUT/report.html (works offline).
    """
    # imported here, not with the command line: every other command starts without them
    from mlwarden.monitor.backtest import (
        load_detection_policy,
        read_table,
        run_backtest,
        write_outputs,
    )
    from mlwarden.monitor.config import MonitorConfig
    from mlwarden.monitor.lake import backtest_lake
    from mlwarden.monitor.window import WindowSpec
    from mlwarden.stats.profile import Columns

    err = Console(stderr=True)
    try:
        spec = WindowSpec.parse(window)
        config, warnings = load_detection_policy(policy) if policy else (MonitorConfig(), [])
        for warning in warnings:
            err.print(f"[yellow]warning:[/] {warning}")
        cols = Columns(
            id=id_col,
            timestamp=timestamp_col,
            prediction=prediction_col,
            score=score_col,
            proba_prefix=proba_prefix,
            label=label_col,
            latency=latency_col,
            error=error_col,
        )
        if engine not in ("pandas", *ENGINES):
            raise InvalidInput(f"--engine must be pandas, {', '.join(ENGINES)} (got {engine!r})")
        if engine == "pandas" and master is not None:
            raise InvalidInput("--master is a Spark master URL: it needs --engine spark")
        if engine != "pandas" and labels is not None:
            raise InvalidInput(
                f"--labels needs --engine pandas: a lake backtest ({engine}) "
                "judges profiles, not labelled rows"
            )
        with engine_progress(err, "backtest", as_json) as progress:
            task = progress.add_task("windows", total=None)

            def advance(done: int, total: int | None) -> None:
                progress.update(task, completed=done, total=total)

            if engine == "pandas":
                ref = read_table(reference, "reference")
                data = read_table(stream, "stream")
                label_frame = read_table(labels, "labels") if labels else None
                result = run_backtest(ref, data, label_frame, spec, cols, config, advance)
            else:
                result = backtest_lake(
                    reference,
                    stream,
                    spec,
                    engine=engine,
                    master=master,
                    config=config,
                    columns=cols,
                    progress=advance,
                )
        result.warnings = warnings + result.warnings
        paths = write_outputs(result, out)
    except (InvalidInput, ServiceUnavailable) as exc:
        err.print(f"[red]error:[/] {escape(exc.message)}")
        raise typer.Exit(code=2) from None
    summary = result.summary()
    summary["outputs"] = {name: str(path) for name, path in paths.items()}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    for warning in result.warnings[len(warnings) :]:
        err.print(f"[yellow]warning:[/] {warning}")
    err.print(
        f"{summary['windows']} windows, {summary['findings']} findings "
        f"{summary['by_kind']}; report: {paths['report.html']}"
    )
