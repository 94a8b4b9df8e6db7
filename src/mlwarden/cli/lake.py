"""``mlwarden profile``: a reference profile of a lake of Parquet logs, on Polars or Spark
(module `lake`, not `profile`: `spark-submit cli/main.py` puts this folder first on the
path, where a `profile` module would hide the standard library's)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mlwarden.cli.app import app
from mlwarden.errors import InvalidInput, ServiceUnavailable
from mlwarden.monitor.lake_options import DEFAULT_LAYOUT_ROWS, ENGINES

ENGINE_HELP = (
    "polars: this machine, file after file; spark: every partition on a Spark "
    "executor (the mlwarden[spark] extra)"
)


def engine_progress(console: Console, what: str, transient: bool) -> Progress:
    """The bar both lake commands show: chunks read (Polars) or tasks done (Spark)."""
    return Progress(
        TextColumn(f"[bold]{what}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )


@app.command()
def profile(
    input: str = typer.Option(
        ...,
        "--input",
        help="Parquet logs: a file, a folder or a glob "
        "('logs/*.parquet'; with Spark, any path the cluster reads).",
    ),
    out: Path = typer.Option(..., "--out", help="Where to write the profile (JSON)."),
    engine: str = typer.Option("polars", "--engine", help=ENGINE_HELP),
    master: str | None = typer.Option(
        None,
        "--master",
        help="Spark master URL (local[4], "
        "spark://host:7077, yarn, k8s://...); default: the one "
        "spark-submit sets, else Spark's own.",
    ),
    layout_rows: int = typer.Option(
        DEFAULT_LAYOUT_ROWS,
        "--layout-rows",
        help="The bins come from this many first records in file order.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a summary JSON on stdout."),
    timestamp_col: str = typer.Option("timestamp", "--timestamp-col", help="Time column."),
    id_col: str = typer.Option("id", "--id-col", help="Record id column."),
    prediction_col: str = typer.Option("prediction", "--prediction-col"),
    score_col: str = typer.Option("score", "--score-col", help="Positive-class score column."),
    proba_prefix: str = typer.Option("proba_", "--proba-prefix", help="Per-class columns."),
    label_col: str = typer.Option("label", "--label-col"),
    latency_col: str = typer.Option("latency_ms", "--latency-col"),
    error_col: str = typer.Option("error", "--error-col"),
) -> None:
    """Profile every record of a lake of prediction logs into a reference (JSON).

    The profile is what `mlwarden backtest --reference` reads; both engines give the same one.
    """
    # imported here, not with the command line: every other command starts without them
    from mlwarden.monitor.lake import profile_lake
    from mlwarden.stats.profile import Columns

    err = Console(stderr=True)
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
    try:
        if engine not in ENGINES:
            raise InvalidInput(f"--engine must be one of {', '.join(ENGINES)} (got {engine!r})")
        if out.exists() and out.is_dir():
            raise InvalidInput(f"--out {out} is a folder: give a file name (ref.json)")
        with engine_progress(err, "profile", as_json) as progress:
            task = progress.add_task("chunks", total=None)

            def advance(done: int, total: int | None) -> None:
                progress.update(task, completed=done, total=total)

            result = profile_lake(
                input,
                engine=engine,
                master=master,
                columns=cols,
                layout_rows=layout_rows,
                progress=advance,
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_dict()))
    except (InvalidInput, ServiceUnavailable) as exc:
        err.print(f"[red]error:[/] {escape(exc.message)}")
        raise typer.Exit(code=2) from None
    summary = {
        "rows": result.rows,
        "features": list(result.features),
        "outputs": list(result.outputs),
        "time_min": result.time_min,
        "time_max": result.time_max,
        "engine": engine,
        "out": str(out),
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    err.print(f"{result.rows:,} records, {len(result.features)} features; profile: {out}")
