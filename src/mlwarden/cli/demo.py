"""``mlwarden demo``: the README's main command."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mlwarden.cli.app import app


@app.command()
def demo(
    scenario: str = typer.Option("demo", help="Built-in scenario (or YAML file) to stream."),
    speed: float = typer.Option(1.0, min=0.1, max=20.0, help="Traffic rate multiplier."),
    port: int = typer.Option(8000, help="Port of the server on 127.0.0.1."),
    data_dir: Path = typer.Option(
        Path("mlwarden-demo"), help="Folder for the demo's data (wiped)."
    ),
    duration: float = typer.Option(None, help="Stop after this many seconds (default: Ctrl-C)."),
    seed: int = typer.Option(0, help="Random seed of the data split and faults."),
    mode: str = typer.Option(
        None, help="autonomous (act) or advisory (every remedy waits for your approval)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary at the end."),
) -> None:
    """Train the example model, serve it with the dashboard, stream live traffic and faults.

    Open the printed URL: within the first minute the dashboard shows the data-quality break
    detected and an incident diagnosed; the agent scores its remedies (repairing the inputs at
    the gateway, the fallback model) against keeping the champion on the incident's own records
    and takes one only where it does not answer them worse (undone once the data is clean).
    The later concept change leads to decisions the demo's policy sends for approval.
    Ctrl-C stops it cleanly.
    """
    from mlwarden.errors import MlwardenError
    from mlwarden.scenarios.demo import Demo
    from mlwarden.scenarios.spec import load_scenario
    from mlwarden.server.background import serve_in_background

    if mode not in (None, "autonomous", "advisory"):
        raise typer.BadParameter("choose autonomous or advisory", param_hint="--mode")
    try:
        spec = load_scenario(scenario)
        if mode is not None:
            spec = spec.model_copy(update={"mode": mode})
    except MlwardenError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    say = (lambda text: typer.echo(text, err=True)) if as_json else typer.echo
    runner = Demo(
        spec, data_dir, serve=serve_in_background, port=port, speed=speed, seed=seed, say=say
    )
    status = runner.run(duration)
    if as_json:
        typer.echo(json.dumps(status.__dict__))
