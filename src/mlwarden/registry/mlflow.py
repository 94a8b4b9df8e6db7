"""Import a version from an MLflow model registry (optional extra ``mlflow``).

``import_from_mlflow(registry, "churn", "models:/churn/3")`` loads the scikit-learn flavour of
that registered model and stores it as a new skops version (MLflow's own pickle is read by
MLflow, from a registry the user trusts; what mlwarden keeps is the safe skops file).
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pandas as pd

from mlwarden.errors import InvalidInput, ServiceUnavailable
from mlwarden.registry.registry import Registry
from mlwarden.store import VersionInfo

_URI = re.compile(r"^models:/(?P<name>[^/]+)/(?P<ref>[^/]+)$")


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise ServiceUnavailable(
            'MLflow support is an optional extra: pip install "mlwarden[mlflow]"'
        ) from None
    return mlflow


def _registry(tracking_uri: str | None) -> AbstractContextManager[Any]:
    """Point MLflow at ``tracking_uri`` for the duration only: the caller's MLflow setting
    (``mlflow.set_tracking_uri``, ``$MLFLOW_TRACKING_URI``) is theirs."""
    if tracking_uri is None:
        return nullcontext()
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    return _use_tracking_uri(tracking_uri)


def import_from_mlflow(
    registry: Registry,
    model: str,
    uri: str,
    *,
    X_reference: pd.DataFrame,
    y_reference: Any = None,
    actor: str = "system",
    tracking_uri: str | None = None,
) -> VersionInfo:
    """Add the scikit-learn model at ``uri`` (``models:/<name>/<version or stage>``) as a
    new version of ``model``. ``tracking_uri`` names the registry (default: MLflow's own,
    ``$MLFLOW_TRACKING_URI``)."""
    if not _URI.match(uri):
        raise InvalidInput(f"an MLflow model URI looks like models:/<name>/<version>, got {uri!r}")
    mlflow = _mlflow()
    try:
        with _registry(tracking_uri):
            estimator = mlflow.sklearn.load_model(uri)
    except mlflow.exceptions.MlflowException as exc:
        raise InvalidInput(f"MLflow cannot load {uri}: {exc.message}") from None
    return registry.add_sklearn_version(
        model,
        estimator,
        X_reference=X_reference,
        y_reference=y_reference,
        description=f"imported from MLflow {uri}",
        actor=actor,
    )


_DATABASE = re.compile(r"^(sqlite|postgresql|mysql|mssql)(\+\w+)?://")


def artifact_location(uri: str, data_dir: str | Path | None = None) -> str | None:
    """Where runs logged to the tracking store ``uri`` keep their files, for an experiment
    made by mlwarden; None leaves it to the tracking server.

    A database store has no artifact root of its own and MLflow's default is ``./mlruns``
    of whatever folder the process runs in. For a SQLite file the files go beside it, in
    ``mlflow-artifacts``; for another database under ``data_dir`` when given. A tracking
    server (``http(s)://``) and a file store (a folder) keep their own.

    >>> artifact_location("sqlite:////srv/mlflow/runs.db")
    'file:///srv/mlflow/mlflow-artifacts'
    >>> artifact_location("postgresql://db/mlflow", "/var/lib/mlwarden")
    'file:///var/lib/mlwarden/mlflow-artifacts'
    >>> artifact_location("http://mlflow:5000") is None
    True
    """
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:///:memory:"):
        database = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        return (database.resolve().parent / "mlflow-artifacts").as_uri()
    if _DATABASE.match(uri) and data_dir is not None:
        return (Path(data_dir).resolve() / "mlflow-artifacts").as_uri()
    return None


__all__ = ["artifact_location", "import_from_mlflow"]
