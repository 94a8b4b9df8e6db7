"""Registry commands: ``import-mlflow`` (an MLflow model as a new version), ``delete-model``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mlwarden.cli.app import app
from mlwarden.cli.serve import _errors, _open_store


@app.command("import-mlflow")
def import_mlflow(
    model: str = typer.Argument(..., help="The mlwarden model (registered, with its schema)."),
    uri: str = typer.Argument(..., help="The MLflow model: models:/<name>/<version or alias>."),
    reference: Path = typer.Option(
        ..., help="CSV, Parquet or JSON lines of training rows: the version's reference sample."
    ),
    tracking_uri: str = typer.Option(
        None, help="The MLflow tracking/registry URI (default: $MLFLOW_TRACKING_URI)."
    ),
    data_dir: Path = typer.Option(None, help="Folder of the SQLite database."),
    database_url: str = typer.Option(None, help="SQLAlchemy URL of the database."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Import a scikit-learn model from an MLflow registry as a new version (stored as skops)."""
    from mlwarden.assistant.datasets import read_table
    from mlwarden.errors import InvalidInput
    from mlwarden.registry.mlflow import import_from_mlflow
    from mlwarden.registry.registry import Registry

    with _errors(), _open_store(data_dir, database_url) as store:
        spec = store.get_model(model)
        frame = read_table(reference)
        missing = [name for name in spec.feature_names if name not in frame.columns]
        if missing:
            raise InvalidInput(f"the reference file lacks the model's features {missing}")
        target = spec.target if spec.target in frame.columns else None
        info = import_from_mlflow(
            Registry(store),
            model,
            uri,
            X_reference=frame[spec.feature_names],
            y_reference=None if target is None else frame[target],
            actor="cli",
            tracking_uri=tracking_uri,
        )
    if as_json:
        typer.echo(json.dumps({"model": model, "version": info.number, "source": uri}))
    else:
        typer.echo(f"imported {uri} as {model} version {info.number}")


@app.command("delete-model")
def delete_model(
    model: str = typer.Argument(..., help="The model to delete."),
    version: int = typer.Option(
        None, "--version", help="Delete only this version (refused while it is served)."
    ),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    data_dir: Path = typer.Option(None, help="Folder of the SQLite database."),
    database_url: str = typer.Option(None, help="SQLAlchemy URL of the database."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Delete a model that serves nothing, with everything stored about it, or one version no
    deployment serves (audited as the actor "cli"). With a server running on the same
    database, delete through its API instead (DELETE /v1/models/NAME), which also drops the
    server's cached routing of the model."""
    what = f"version {version} of {model}" if version is not None else f"model {model}"
    if not yes:
        typer.confirm(f"delete {what} and what is stored with it?", abort=True)
    with _errors(), _open_store(data_dir, database_url) as store:
        if version is not None:
            store.delete_version(model, version, actor="cli")
            result: dict[str, object] = {"deleted": model, "version": version}
        else:
            result = {"deleted": model, **store.delete_model(model, actor="cli")}
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(f"deleted {what}")
