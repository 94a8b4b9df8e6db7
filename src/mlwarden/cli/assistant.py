"""``mlwarden ask "..."`` and the plain commands it maps to (train, deploy, promote, rollback,
monitor, datasets …, experiments …). Both go through the same executor."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from mlwarden.cli.app import app

if TYPE_CHECKING:  # the executor pulls in scikit-learn: import it when a command runs
    from mlwarden.assistant.executor import Assistant, Conversation, Reply


console = Console()
datasets_app = typer.Typer(help="Stored, versioned datasets: upload, clean, download, list.")
experiments_app = typer.Typer(help="Logged training runs: list, compare; and the models.")
app.add_typer(datasets_app, name="datasets")
app.add_typer(experiments_app, name="experiments")

JSON_OPTION = typer.Option(False, "--json", help="Print the reply as JSON.")
YES_OPTION = typer.Option(False, "--yes", "-y", help="Confirm production changes.")


def _assistant() -> tuple[Assistant, Conversation]:
    """The assistant of this machine's store and its conversation.

    The person at the terminal acts as themselves, so commands may read and write their files
    by path; every command is a new process, so "it" starts from the store's newest dataset
    and model.
    """
    from mlwarden.assistant.executor import Assistant, Conversation
    from mlwarden.settings import get_settings
    from mlwarden.store import Store

    settings = get_settings()
    assistant = Assistant(
        Store.from_settings(settings),
        settings.data_dir,
        local_files=True,
        reference_size=settings.reference_size,
    )
    return assistant, Conversation("cli", from_store=True)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _finish(
    assistant: Assistant, talk: Conversation, reply: Reply, *, as_json: bool, yes: bool
) -> None:
    """Ask for what is missing / for confirmation when a person is at the terminal, then show."""
    from mlwarden.assistant.executor import QUESTIONS, command_for

    while _interactive() and not as_json:
        if reply.status == "needs_input":
            arguments = dict(reply.parsed.arguments)
            for slot in reply.parsed.missing:
                answer = typer.prompt(QUESTIONS.get(slot, f"{slot}?"))
                arguments[slot] = [int(x) for x in answer.split()] if slot == "runs" else answer
            reply = assistant.run(command_for(reply.parsed.intent, arguments), talk, confirm=yes)
            continue
        if reply.status == "needs_confirmation":
            console.print(reply.message)
            if typer.confirm(f"run `{reply.parsed.command}`?", default=False):
                reply = assistant.run(reply.parsed, talk, confirm=True)
                continue
        break
    _show(reply, as_json)
    if reply.status in {"error", "not_understood"}:
        raise typer.Exit(1)
    if reply.status in {"needs_input", "needs_confirmation"}:
        raise typer.Exit(2)


def _show(reply: Reply, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(reply.as_dict(), indent=2, default=str))
        return
    style = {"error": "red", "not_understood": "yellow", "needs_confirmation": "yellow"}
    console.print(reply.message, style=style.get(reply.status), markup=False, highlight=False)
    for table in reply.tables:
        console.print(table)
    for note in reply.parsed.notes:
        console.print(f"note: {note}", style="dim", markup=False)
    if reply.parsed.ignored:
        console.print(f"ignored: {' '.join(reply.parsed.ignored)}", style="dim", markup=False)
    if reply.parsed.command:
        console.print(f"command: {reply.parsed.command}", style="dim", markup=False)


def _run(
    intent: str, arguments: dict[str, Any], *, as_json: bool = False, yes: bool = False
) -> None:
    from mlwarden.assistant.executor import command_for

    assistant, talk = _assistant()
    reply = assistant.run(command_for(intent, arguments), talk, confirm=yes)
    _finish(assistant, talk, reply, as_json=as_json, yes=yes)


def _move(
    intent: str, model: str, environment: str, version: int | None, *, as_json: bool, yes: bool
) -> None:
    arguments: dict[str, Any] = {"model": model, "environment": environment}
    if version is not None:
        arguments["version"] = version
    _run(intent, arguments, as_json=as_json, yes=yes)


@app.command()
def ask(
    text: list[str] = typer.Argument(..., help='What to do, in plain words: "clean titanic".'),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what was understood; run nothing."),
    as_json: bool = JSON_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Plain-language commands: upload, clean, train, deploy, promote, monitor, download …"""
    assistant, talk = _assistant()
    sentence = " ".join(text)
    if dry_run:
        parsed = assistant.understand(sentence, talk)
        if as_json:
            typer.echo(json.dumps(parsed.to_dict(), indent=2))
        else:
            from mlwarden.assistant.executor import Reply

            _show(Reply("dry_run", parsed, f"understood: {parsed.intent}"), as_json=False)
        return
    reply = assistant.handle(sentence, talk, confirm=yes)
    _finish(assistant, talk, reply, as_json=as_json, yes=yes)


@app.command()
def train(
    dataset: str = typer.Option(..., help="Dataset name (or a CSV/Parquet file to upload first)."),
    target: str = typer.Option(..., help="The column to predict."),
    task: str | None = typer.Option(None, help="classification or regression (default: guessed)."),
    algorithm: str | None = typer.Option(
        None,
        help="logistic_regression, linear_regression, random_forest, gradient_boosting, lightgbm.",
    ),
    model: str | None = typer.Option(None, help="Model name (default: DATASET-TARGET)."),
    dataset_version: int | None = typer.Option(None, help="Dataset version (default: newest)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Train, cross-validate and register a model; the run is logged as an experiment."""
    arguments: dict[str, Any] = {
        "dataset": dataset,
        "target": target,
        "task": task,
        "algorithm": algorithm,
    }
    arguments |= {"model": model, "dataset_version": dataset_version}
    _run("train", {k: v for k, v in arguments.items() if v is not None}, as_json=as_json)


@app.command()
def deploy(
    model: str = typer.Argument(..., help="Model name."),
    env: str = typer.Option("staging", "--env", help="staging or production."),
    version: int | None = typer.Option(None, help="Version (default: the newest)."),
    as_json: bool = JSON_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Make a version live in staging or production (production asks for confirmation)."""
    _move("deploy", model, env, version, as_json=as_json, yes=yes)


@app.command()
def promote(
    model: str = typer.Argument(..., help="Model name."),
    version: int | None = typer.Option(None, help="Version (default: the one live in staging)."),
    as_json: bool = JSON_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Make the version live in staging live in production."""
    _move("promote", model, "production", version, as_json=as_json, yes=yes)


@app.command()
def rollback(
    model: str = typer.Argument(..., help="Model name."),
    env: str = typer.Option("production", "--env", help="staging or production."),
    version: int | None = typer.Option(None, help="Version (default: the previous live one)."),
    as_json: bool = JSON_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Make the previous live version live again."""
    _move("rollback", model, env, version, as_json=as_json, yes=yes)


@app.command()
def monitor(
    model: str = typer.Argument(..., help="Model name."),
    off: bool = typer.Option(False, "--off", help="Stop monitoring instead."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Turn monitoring (drift, quality, performance; default policy) on or off."""
    _run("monitor", {"model": model, "enabled": not off}, as_json=as_json)


@datasets_app.command("upload")
def datasets_upload(
    path: str = typer.Argument(..., help="CSV, TSV, Parquet or JSON lines file."),
    name: str | None = typer.Option(None, help="Dataset name (default: the file's name)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Store a file as a new dataset version."""
    _run("upload", {"path": path, "name": name}, as_json=as_json)


@datasets_app.command("example")
def datasets_example(
    example: str = typer.Argument(..., help="titanic, electricity, bike_sharing or flights."),
    name: str | None = typer.Option(None, help="Dataset name (default: the example's)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Store one of the bundled example datasets."""
    _run("upload", {"example": example, "name": name or example}, as_json=as_json)


@datasets_app.command("clean")
def datasets_clean(
    name: str = typer.Argument(..., help="Dataset name."),
    version: int | None = typer.Option(None, help="Version to clean (default: the newest)."),
    keep: str | None = typer.Option(None, help="A column to keep as it is (the target)."),
    plan: bool = typer.Option(False, "--plan", help="Only show the plan."),
    drop_non_numeric: bool = typer.Option(
        False, "--drop-non-numeric", help="Drop every column that is not a number."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the cleaning plan, then store the cleaned data as a new version."""
    arguments: dict[str, Any] = {"dataset": name}
    if drop_non_numeric:
        arguments["drop_non_numeric"] = True
    if version is not None:
        arguments["version"] = version
    if keep:
        arguments["keep"] = keep
    if plan:
        arguments["plan_only"] = True
    _run("clean", arguments, as_json=as_json)


@datasets_app.command("download")
def datasets_download(
    name: str = typer.Argument(..., help="Dataset name."),
    version: int | None = typer.Option(None, help="Version (default: the newest)."),
    cleaned: bool = typer.Option(False, "--cleaned", help="The newest cleaned version."),
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
    output: str | None = typer.Option(None, help="File to write (default: NAME-vN.FORMAT)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a stored version as CSV or Parquet."""
    arguments: dict[str, Any] = {"dataset": name, "format": fmt, "output": output}
    if version is not None:
        arguments["version"] = version
    elif cleaned:
        arguments["cleaned"] = True
    _run("download", arguments, as_json=as_json)


@datasets_app.command("list")
def datasets_list(as_json: bool = JSON_OPTION) -> None:
    """Every stored dataset version."""
    _run("list", {"what": "datasets"}, as_json=as_json)


@experiments_app.command("list")
def experiments_list(
    model: str | None = typer.Option(None, help="Only the runs of this model."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Every logged training run."""
    arguments: dict[str, Any] = {"what": "experiments"}
    if model:
        arguments["model"] = model
    _run("list", arguments, as_json=as_json)


@experiments_app.command("compare")
def experiments_compare(
    first: int = typer.Argument(..., help="A run id."),
    second: int = typer.Argument(..., help="Another run id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Two runs side by side: metrics and the parameters that differ."""
    _run("compare", {"runs": [first, second]}, as_json=as_json)


@experiments_app.command("models")
def experiments_models(as_json: bool = JSON_OPTION) -> None:
    """Models with their versions, staging and production live versions, monitoring."""
    _run("list", {"what": "models"}, as_json=as_json)
