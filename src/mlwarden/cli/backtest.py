"""``mlwarden backtest``: every detector over historical logs, to tune a policy first."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mlwarden.cli.app import app
from mlwarden.errors import InvalidInput
from mlwarden.monitor.backtest import (
    load_detection_policy,
    read_table,
    run_backtest,
    write_outputs,
)
from mlwarden.monitor.engine import MonitorConfig
from mlwarden.monitor.window import WindowSpec
from mlwarden.stats.profile import Columns


@app.command()
def backtest(
    reference: Path = typer.Option(..., "--reference", help="Reference records (CSV or Parquet)."),
    stream: Path = typer.Option(..., "--stream", help="Logged prediction records (CSV/Parquet)."),
    out: Path = typer.Option(..., "--out", help="Folder for findings.json and the reports."),
    labels: Path | None = typer.Option(None, "--labels", help="Labels joined to records by id."),
    window: str = typer.Option("1000", "--window", help="Records per window (1000) or a "
                               "duration of record time (1h, 30min, 1d)."),
    policy: Path | None = typer.Option(None, "--policy", help="YAML with detection thresholds."),
    as_json: bool = typer.Option(False, "--json", help="Print a summary JSON on stdout."),
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
    err = Console(stderr=True)
    try:
        spec = WindowSpec.parse(window)
        config, warnings = (load_detection_policy(policy) if policy else (MonitorConfig(), []))
        for warning in warnings:
            err.print(f"[yellow]warning:[/] {warning}")
        cols = Columns(id=id_col, timestamp=timestamp_col, prediction=prediction_col,
                       score=score_col, proba_prefix=proba_prefix, label=label_col,
                       latency=latency_col, error=error_col)
        ref = read_table(reference, "reference")
        data = read_table(stream, "stream")
        label_frame = read_table(labels, "labels") if labels else None
        with Progress(TextColumn("[bold]backtest"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=as_json) as progress:
            task = progress.add_task("windows", total=None)

            def advance(done: int, total: int | None) -> None:
                progress.update(task, completed=done, total=total)

            result = run_backtest(ref, data, label_frame, spec, cols, config, advance)
        result.warnings = warnings + result.warnings
        paths = write_outputs(result, out)
    except InvalidInput as exc:
        err.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(code=2) from None
    summary = result.summary()
    summary["outputs"] = {name: str(path) for name, path in paths.items()}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    for warning in result.warnings[len(warnings):]:
        err.print(f"[yellow]warning:[/] {warning}")
    err.print(f"{summary['windows']} windows, {summary['findings']} findings "
              f"{summary['by_kind']}; report: {paths['report.html']}")
