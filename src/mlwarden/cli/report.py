"""``mlwarden report``: an incident's root-cause report in Markdown, HTML or JSON."""

from __future__ import annotations

from pathlib import Path

import typer

from mlwarden.cli.app import app


@app.command()
def report(
    incident: int = typer.Argument(..., help="The incident id (see `mlwarden incidents`)."),
    fmt: str = typer.Option("md", "--format", help="md, html or json."),
    out: Path = typer.Option(None, "--out", help="Write to this file instead of stdout."),
    data_dir: Path = typer.Option(None, help="Folder of the SQLite database."),
    database_url: str = typer.Option(None, help="SQLAlchemy URL of the database."),
) -> None:
    """Write an incident's report: symptom, impact, timeline, hypotheses, investigation,
    resolution — from the findings, signals, events and actions the agent stored."""
    from mlwarden.agent.reports import incident_context
    from mlwarden.errors import MlwardenError
    from mlwarden.settings import Settings
    from mlwarden.store import Store

    if fmt not in {"md", "html", "json"}:
        raise typer.BadParameter("choose md, html or json", param_hint="--format")
    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    try:
        with Store.from_settings(Settings(**overrides)) as store:  # type: ignore[arg-type]
            context = incident_context(store, incident)
    except MlwardenError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    diagnosis = context["diagnosis"]
    if diagnosis is None:
        typer.echo(
            f"error: no diagnosis for incident {incident}: {context['diagnosis_error']}", err=True
        )
        raise typer.Exit(1)
    from mlwarden.diagnose.checks import fill_checks

    diagnosis.checks = fill_checks(diagnosis.checks, incident=incident)
    text = {"md": diagnosis.to_markdown, "html": diagnosis.to_html, "json": diagnosis.to_json}[
        fmt
    ]()
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text)
        typer.echo(f"wrote {out}", err=True)
