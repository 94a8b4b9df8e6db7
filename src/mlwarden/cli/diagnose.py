"""``mlwarden diagnose``: diagnosis from free text on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from mlwarden.cli.app import app
from mlwarden.diagnose.free_text import (
    TextDiagnosis,
    diagnose_scenario,
    diagnose_text,
    list_scenarios,
)
from mlwarden.diagnose.loader import load_playbooks
from mlwarden.errors import MlwardenError

_SEVERITY_STYLE = {
    "low": "green",
    "medium": "yellow",
    "high": "red",
    "critical": "bold white on red",
}


@app.command()
def diagnose(
    text: str | None = typer.Argument(None, help="What is going wrong, in your own words."),
    list_: bool = typer.Option(False, "--list", help="List the predefined scenarios."),
    scenario: str | None = typer.Option(None, "--scenario", help="Show one scenario by id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {matched, matches}."),
    top: int = typer.Option(3, "--top", min=1, max=10, help="How many scenarios to show."),
    explain: bool = typer.Option(False, "--explain", help="Show which words led to each match."),
    feature: list[str] = typer.Option(
        [], "--feature", help="A feature name of your model (repeatable): recognised in the text."
    ),
    playbooks_dir: Path | None = typer.Option(
        None,
        "--playbooks",
        envvar="MLWARDEN_PLAYBOOKS_DIR",
        help="Folder of your own playbook YAML files (override bundled ones of the same id).",
    ),
) -> None:
    """Diagnose a production-ML problem from a description, or browse the playbooks.

    Example: mlwarden diagnose "p99 latency doubled after the 14:00 deploy"
    """
    console = Console(soft_wrap=False)
    try:
        playbooks = load_playbooks(playbooks_dir)
        if list_:
            rows = list_scenarios(playbooks)
            if as_json:
                typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
            else:
                _print_list(console, rows)
            return
        if scenario is not None:
            answer = diagnose_scenario(scenario, playbooks=playbooks)
        elif text is not None:
            answer = diagnose_text(text, playbooks=playbooks, limit=top, known_features=feature)
        else:
            raise typer.BadParameter("give a TEXT to diagnose, or --list, or --scenario ID")
    except MlwardenError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=2) from exc
    if as_json:
        typer.echo(answer.to_json(explain=explain))
    else:
        _print_answer(console, answer, explain=explain)


def _print_list(console: Console, rows: list[dict[str, str]]) -> None:
    table = Table(title="Predefined scenarios (mlwarden diagnose --scenario ID)")
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("title")
    table.add_column("base severity")
    for row in rows:
        sev = row["severity"]
        table.add_row(row["id"], row["title"], f"[{_SEVERITY_STYLE[sev]}]{sev}[/]")
    console.print(table)


def _print_answer(console: Console, answer: TextDiagnosis, *, explain: bool = False) -> None:
    facts = answer.facts.describe()
    if facts:
        console.print("[bold]Facts read from the text:[/] " + "; ".join(facts))
    if not answer.matched:
        console.print(
            Panel(
                "\n".join(f"{i}. {step}" for i, step in enumerate(answer.triage, 1)),
                title="No playbook matches this description well - generic triage checklist",
                border_style="yellow",
            )
        )
        return
    for rank, match in enumerate(answer.matches, 1):
        sev = match.severity.value
        head = (
            f"[{_SEVERITY_STYLE[sev]}] {sev.upper()} [/]  confidence {match.confidence:.2f}"
            f"  ([cyan]{match.id}[/])"
        )
        if match.severity_reasons:
            head += "\nseverity raised: " + "; ".join(match.severity_reasons)
        if explain and match.explain:
            head += "\nwhy: " + "; ".join(
                f"[bold]{escape(e['words'])}[/] ({e['via']}, +{e['weight']:g})"
                for e in match.explain
            )
        checks = Table(show_header=True, box=None, pad_edge=False)
        checks.add_column("check now", style="bold")
        checks.add_column("run / open", overflow="fold")
        for check in match.checks:
            checks.add_row(check["title"], check["run"])
        causes = "\n".join(f"{i}. {c}" for i, c in enumerate(match.causes, 1))
        actions = "\n".join(f"- [bold]{a['action']}[/]: {a['description']}" for a in match.actions)
        console.print(Panel.fit(head, title=f"#{rank} {match.title}", border_style="cyan"))
        console.print(checks)
        console.print(f"[bold]Likely causes[/]\n{causes}")
        console.print(f"[bold]Recommended actions[/]\n{actions}\n")
