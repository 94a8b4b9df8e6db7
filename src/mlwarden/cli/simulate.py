"""``mlwarden simulate``: run a scenario through the real gateway, store, monitor and agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlwarden.cli.app import app


@app.command()
def simulate(
    scenario: str = typer.Argument(None, help="A built-in scenario name or a scenario YAML file."),
    out: Path = typer.Option(
        Path("simulation"), "--out", help="Folder for timeline, summary, report."
    ),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same run."),
    list_: bool = typer.Option(False, "--list", help="List the built-in scenarios and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json instead of a table."),
    order: str = typer.Option(
        None,
        "--order",
        help="time: stream the rows in the dataset's order, with its natural drift; "
        "shuffled: shuffle them (a stationary stream). Default: the scenario's own.",
    ),
) -> None:
    """Inject a scenario's faults into a real model's traffic and score how mlwarden copes.

    Exits 1 when an expectation of the scenario fails, 2 on a bad scenario.
    """
    from mlwarden.errors import MlwardenError
    from mlwarden.scenarios.simulate import Simulation
    from mlwarden.scenarios.spec import builtin_names, load_scenario

    console = Console(stderr=as_json)
    if list_:
        rows = [load_scenario(name) for name in builtin_names()]
        if as_json:
            typer.echo(json.dumps([{"name": s.name, "description": s.description} for s in rows]))
            return
        table = Table("scenario", "faults", "description")
        for s in rows:
            table.add_row(s.name, ", ".join(f.kind for f in s.faults) or "none", s.description)
        console.print(table)
        return
    if scenario is None:
        raise typer.BadParameter("name a scenario (mlwarden simulate --list shows them)")
    if order not in (None, "time", "shuffled"):
        raise typer.BadParameter("--order is time or shuffled", param_hint="--order")
    try:
        spec = load_scenario(scenario, order=cast(Literal["time", "shuffled"] | None, order))
    except MlwardenError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    with Progress(
        TextColumn(f"simulating {spec.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("windows"),
        TimeElapsedColumn(),
        console=console,
        transient=as_json,
    ) as progress:
        task = progress.add_task("windows", total=spec.windows)
        result = Simulation(
            spec, out, seed=seed, progress=lambda done, total: progress.update(task, completed=done)
        ).run()
    summary = result.summary
    if as_json:
        typer.echo(json.dumps(summary, default=str))
    else:
        _print_summary(console, summary, out)
    if not result.passed:
        raise typer.Exit(1)


def _print_summary(console: Console, summary: dict, out: Path) -> None:
    score = summary["score"]
    table = Table("window", "action", "outcome", title="actions")
    for action in summary["actions"]:
        table.add_row(str(action["window"]), action["action"], action["outcome"])
    console.print(table)
    incidents = Table("opened", "kind", "severity", "resolved", title="incidents")
    for incident in summary["incidents"]:
        incidents.add_row(
            str(incident["opened_window"]),
            str(incident["kind"]),
            incident["severity"],
            str(incident["resolved_window"]),
        )
    console.print(incidents)
    for check in score.get("checks", []):
        mark = "[green]PASS[/green]" if check["passed"] else "[red]FAIL[/red]"
        console.print(f"{mark} {check['expect']}")
    recovery = score["recovery"]
    console.print(
        f"{recovery['metric']} over the fault periods: mlwarden {recovery['mlwarden']}, "
        f"doing nothing {recovery['no_action']}, oracle {recovery['oracle']}"
    )
    harm = score["harm"]
    verdict = (
        "[red]worse than doing nothing[/red]"
        if harm["worse"]
        else "[green]better than doing nothing[/green]"
        if harm["helped"]
        else "no better, no worse than doing nothing"
    )
    console.print(f"harm (tolerance {harm['tolerance']}): {verdict}")
    console.print(
        f"false-alarm windows: {score['false_alarm_windows']} of {score['clean_windows']} clean"
    )
    console.print(f"wrote {out}/timeline.json, summary.json, report.html, report.md")
