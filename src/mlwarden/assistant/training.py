"""Training from a dataset: a sensible scikit-learn pipeline, a held-out test, cross-validation,
and an experiment log (parameters, metrics, data version, the registry version it produced).

The pipeline imputes (median / most frequent), scales numbers for linear models, and one-hot
encodes categories with at most ``max_categories`` indicator columns per feature (rare levels
share one "infrequent" column), so a text column with a thousand levels stays a few dozen
columns. Identifier-like columns are left out with a note. Columns are selected by position,
which lets the gateway feed an array in the model's column order for all-numeric models.

>>> from mlwarden.datasets import load
>>> result = train_model(load("titanic"), "Survived", algorithm="logistic_regression", cv=3)
>>> result.task, result.algorithm, result.metrics["accuracy"] > 0.7
('classification', 'logistic_regression', True)
>>> sorted(result.dropped)
['Name', 'PassengerId']
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import math
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from mlwarden.assistant.cleaning import is_identifier
from mlwarden.domain import FeatureSpec, FeatureType, ModelSpec, Task
from mlwarden.errors import InvalidInput, NotFound
from mlwarden.registry.preparation import (
    CleaningSteps,
    category_text,
    coerce_inputs,
    input_kinds,
)
from mlwarden.store import Store
from mlwarden.store.assistant import Experiment

DEFAULT_ALGORITHM = "random_forest"
MAX_CATEGORIES = 20
MAX_LISTED_CATEGORIES = 50  # categories named in the model's schema (drift watches them)
CLASSIFICATION_MAX_LEVELS = 20  # an integer target with at most this many values is a class


def lightgbm_available() -> bool:
    return importlib.util.find_spec("lightgbm") is not None


def choose_task(target: pd.Series) -> Task:
    """Classification for text, booleans and integers with few values; regression otherwise."""
    values = target.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return Task.CLASSIFICATION
    integral = pd.api.types.is_integer_dtype(values) or bool(
        np.all(np.mod(values.to_numpy(dtype=float), 1) == 0)
    )
    if integral and values.nunique() <= CLASSIFICATION_MAX_LEVELS:
        return Task.CLASSIFICATION
    return Task.REGRESSION


def make_estimator(task: Task, algorithm: str, *, random_state: int = 0, n_jobs: int = 1) -> Any:
    """The scikit-learn (or LightGBM) estimator named by ``algorithm`` for ``task``."""
    classification = task is Task.CLASSIFICATION
    if algorithm == "logistic_regression":
        if not classification:
            raise InvalidInput("logistic regression predicts classes; use linear_regression")
        return LogisticRegression(max_iter=2000)
    if algorithm == "linear_regression":
        if classification:
            return LogisticRegression(max_iter=2000)
        return Ridge(alpha=1.0)
    if algorithm == "random_forest":
        cls = RandomForestClassifier if classification else RandomForestRegressor
        return cls(n_estimators=100, min_samples_leaf=2, n_jobs=n_jobs, random_state=random_state)
    if algorithm == "gradient_boosting":
        cls = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
        return cls(max_iter=150, learning_rate=0.08, random_state=random_state)
    if algorithm == "lightgbm":
        if not lightgbm_available():
            raise InvalidInput(
                'LightGBM is not installed (pip install "mlwarden[lightgbm]"); '
                "gradient_boosting is the scikit-learn equivalent"
            )
        import lightgbm

        cls = lightgbm.LGBMClassifier if classification else lightgbm.LGBMRegressor
        return cls(n_estimators=150, n_jobs=n_jobs, random_state=random_state, verbose=-1)
    known = "logistic_regression, linear_regression, random_forest, gradient_boosting, lightgbm"
    raise InvalidInput(f"unknown algorithm {algorithm!r}; choose one of: {known}")


@dataclass
class TrainingResult:
    """What training produced: the fitted pipeline, its metrics and the schema it expects."""

    target: str
    task: str
    algorithm: str
    features: list[str]
    dropped: dict[str, str]
    notes: list[str]
    params: dict[str, Any]
    metrics: dict[str, float]
    estimator: Pipeline
    spec: ModelSpec
    X_test: pd.DataFrame
    y_test: pd.Series
    classes: list[Any] = field(default_factory=list)


def _prepare_features(
    frame: pd.DataFrame, target: str
) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """The usable feature columns (text as str, booleans as numbers), and why others are out."""
    dropped: dict[str, str] = {}
    notes: list[str] = []
    columns: dict[str, pd.Series] = {}
    for name in frame.columns:
        if name == target:
            continue
        series = frame[name]
        if series.isna().all():
            dropped[name] = "every value is missing"
            continue
        reason = is_identifier(series, str(name))
        if reason:
            dropped[name] = f"looks like an identifier: {reason}"
            continue
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            columns[name] = series.astype(float)
        else:
            # the gateway sends 3.0 for a category "3": stored the way it will be looked up
            text = series.map(category_text)
            levels = int(text.nunique())
            if levels > MAX_CATEGORIES:
                notes.append(
                    f"{name!r} has {levels} distinct values: encoded as its "
                    f"{MAX_CATEGORIES - 1} most frequent plus one column for the rest"
                )
            columns[name] = text.astype(object)
    if not columns:
        raise InvalidInput(
            f"no usable feature columns besides {target!r}; left out: {dropped or 'none'}"
        )
    return pd.DataFrame(columns, index=frame.index), dropped, notes


def feature_specs(X: pd.DataFrame, integer_columns: set[str]) -> list[FeatureSpec]:
    specs = []
    for name in X.columns:
        series = X[name]
        if series.dtype == object:
            levels = sorted(series.dropna().unique().tolist())
            specs.append(
                FeatureSpec(
                    name=str(name),
                    type=FeatureType.CATEGORICAL,
                    categories=levels if len(levels) <= MAX_LISTED_CATEGORIES else None,
                )
            )
        else:
            kind = FeatureType.INTEGER if name in integer_columns else FeatureType.NUMERIC
            specs.append(FeatureSpec(name=str(name), type=kind))
    return specs


def input_specs(
    raw: pd.DataFrame, kinds: Mapping[str, str], used: Collection[str]
) -> list[FeatureSpec]:
    """The schema of a model taking ``raw``'s columns as they are (before any cleaning); only
    the ``used`` ones are monitored (a name the cleaning drops would drift on every window)."""
    specs = []
    shown = coerce_inputs(raw, kinds)
    for name, kind in kinds.items():
        watched = name in used
        if kind == "text":
            levels = sorted(shown[name].dropna().unique().tolist())
            listed = levels if len(levels) <= MAX_LISTED_CATEGORIES else None
            specs.append(
                FeatureSpec(
                    name=name,
                    type=FeatureType.CATEGORICAL,
                    categories=listed,
                    monitored=watched,
                )
            )
        elif kind == "boolean":
            specs.append(FeatureSpec(name=name, type=FeatureType.BOOLEAN, monitored=watched))
        else:
            integer = pd.api.types.is_integer_dtype(raw[name])
            kind_of = FeatureType.INTEGER if integer else FeatureType.NUMERIC
            specs.append(FeatureSpec(name=name, type=kind_of, monitored=watched))
    return specs


def build_pipeline(X: pd.DataFrame, estimator: Any, *, scale: bool) -> Pipeline:
    """Imputation, scaling (linear models) and capped one-hot encoding in front of ``estimator``."""
    numeric = [i for i, c in enumerate(X.columns) if X[c].dtype != object]
    categorical = [i for i, c in enumerate(X.columns) if X[c].dtype == object]
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    transformers: list[tuple[str, Any, list[int]]] = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), numeric))
    if categorical:
        encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            max_categories=MAX_CATEGORIES,
            sparse_output=False,
        )
        steps = [("impute", SimpleImputer(strategy="most_frequent")), ("encode", encoder)]
        transformers.append(("categorical", Pipeline(steps), categorical))
    return Pipeline([("prepare", ColumnTransformer(transformers)), ("model", estimator)])


def train_model(
    frame: pd.DataFrame,
    target: str,
    *,
    task: str | Task | None = None,
    algorithm: str | None = None,
    model_name: str = "model",
    test_size: float = 0.2,
    cv: int = 5,
    random_state: int = 0,
    n_jobs: int = 1,
    raw: pd.DataFrame | None = None,
    cleaning: Sequence[Mapping[str, Any]] = (),
) -> TrainingResult:
    """Train and evaluate a pipeline predicting ``target`` from the other columns of ``frame``.

    ``raw`` (with ``cleaning``): ``frame`` is a cleaned dataset and ``raw`` the rows it was
    made from (the same index), before the ``cleaning`` steps. The model then takes ``raw``'s
    columns: its first step (:class:`~mlwarden.registry.preparation.CleaningSteps`) replays
    the steps on every row it is sent, so production sends rows as they are in the raw file.
    The held-out rows, and so the registered reference, are raw rows too."""
    if target not in frame.columns:
        close = [c for c in frame.columns if c.lower() == target.lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidInput(
            f"unknown column {target!r}{hint}; columns are: {list(frame.columns)}",
            column=target,
        )
    labelled = frame[frame[target].notna()]
    notes: list[str] = []
    if len(labelled) < len(frame):
        notes.append(f"{len(frame) - len(labelled)} rows without a {target!r} value left out")
    if len(labelled) < 10:
        raise InvalidInput(f"only {len(labelled)} rows have a {target!r} value; need at least 10")
    y = labelled[target]
    chosen = Task(task) if task is not None else choose_task(y)
    if chosen is Task.CLASSIFICATION:
        y = y.map(lambda v: v if isinstance(v, str) else _native_label(v))
        counts = y.value_counts()
        if len(counts) < 2:
            raise InvalidInput(
                f"target {target!r} has a single class ({counts.index[0]!r}): "
                "a classifier needs at least two",
                column=target,
            )
        if len(counts) > max(CLASSIFICATION_MAX_LEVELS, 0) and pd.api.types.is_numeric_dtype(y):
            raise InvalidInput(
                f"target {target!r} has {len(counts)} numeric values: train a regression model"
            )
    else:
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise InvalidInput(
                f"target {target!r} is not numeric ({y.dtype}): regression needs numbers; "
                "train a classifier instead",
                column=target,
            )
        y = y.astype(float)
    algorithm = algorithm or DEFAULT_ALGORITHM
    estimator = make_estimator(chosen, algorithm, random_state=random_state, n_jobs=n_jobs)
    X, dropped, feature_notes = _prepare_features(labelled, target)
    notes.extend(feature_notes)
    integer_columns = {
        c for c in X.columns if pd.api.types.is_integer_dtype(labelled[c]) and X[c].dtype != object
    }
    pipeline = build_pipeline(
        X, estimator, scale=algorithm in {"logistic_regression", "linear_regression"}
    )
    features = feature_specs(X, integer_columns)
    model_features = [str(c) for c in X.columns]  # the columns its estimator is trained on
    if raw is not None:
        # the model takes the raw columns and cleans them itself (the target's own steps,
        # applied to the labels, are no input's)
        raw_inputs = raw.loc[labelled.index].drop(columns=[target], errors="ignore")
        kinds = input_kinds(raw_inputs)
        clean = CleaningSteps(
            [dict(step) for step in cleaning if step.get("column") != target],
            kinds,
            model_features,
            [str(c) for c in X.columns if X[c].dtype == object],
        )
        pipeline = Pipeline([("clean", clean), *pipeline.steps])
        features = input_specs(raw_inputs, kinds, clean.used_inputs())
        X = raw_inputs

    stratify = None
    if chosen is Task.CLASSIFICATION:
        if y.value_counts().min() >= 2:
            stratify = y
        else:
            notes.append("a class has a single row: the split is not stratified")
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_state, stratify=stratify
    )
    folds = max(2, min(cv, len(X_train) // 5))
    if chosen is Task.CLASSIFICATION and y_train.value_counts().min() >= folds:
        splitter: Any = StratifiedKFold(folds, shuffle=True, random_state=random_state)
    else:
        splitter = KFold(folds, shuffle=True, random_state=random_state)
    scoring = "accuracy" if chosen is Task.CLASSIFICATION else "r2"
    # OpenMP/BLAS threads beyond n_jobs oversubscribe a shared machine (HistGradientBoosting
    # ran 5x slower on 2 busy cores without this limit).
    with threadpool_limits(limits=n_jobs):
        cv_scores = cross_val_score(
            pipeline, X_train, y_train, cv=splitter, scoring=scoring, n_jobs=1
        )
        pipeline.fit(X_train, y_train)

    metrics = _metrics(chosen, pipeline, X_test, y_test)
    metrics[f"cv_{scoring}_mean"] = float(np.mean(cv_scores))
    metrics[f"cv_{scoring}_std"] = float(np.std(cv_scores))
    metrics["train_rows"] = float(len(X_train))
    metrics["test_rows"] = float(len(X_test))

    classes = [_native_label(c) for c in getattr(pipeline, "classes_", [])]
    positive: Any = None
    if chosen is Task.CLASSIFICATION and len(classes) == 2:
        positive = 1 if 1 in classes else (True if True in classes else classes[-1])
    spec = ModelSpec(
        name=model_name,
        task=chosen,
        features=features,
        target=target,
        positive_class=positive,
        description=f"{algorithm} predicting {target}, trained by the assistant",
    )
    params = {
        "algorithm": algorithm,
        "task": chosen.value,
        "target": target,
        "features": model_features,
        "dropped_columns": dropped,
        "test_size": test_size,
        "cv_folds": folds,
        "random_state": random_state,
        "estimator": {
            k: _jsonable(v) for k, v in estimator.get_params(deep=False).items() if _simple(v)
        },
    }
    if raw is not None:
        params["inputs"] = list(X.columns)
        params["cleaning_steps"] = len(cleaning)
    return TrainingResult(
        target=target,
        task=chosen.value,
        algorithm=algorithm,
        features=model_features,
        dropped=dropped,
        notes=notes,
        params=params,
        metrics=metrics,
        estimator=pipeline,
        spec=spec,
        X_test=X_test,
        y_test=y_test,
        classes=classes,
    )


def _native_label(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _simple(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _metrics(task: Task, pipeline: Pipeline, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    predicted = pipeline.predict(X)
    if task is Task.REGRESSION:
        return {
            "r2": float(r2_score(y, predicted)),
            "rmse": float(math.sqrt(mean_squared_error(y, predicted))),
            "mae": float(mean_absolute_error(y, predicted)),
        }
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1_macro": float(f1_score(y, predicted, average="macro")),
    }
    classes = list(pipeline.classes_)
    if len(classes) == 2 and y.nunique() == 2:
        positive = 1 if 1 in classes else classes[-1]
        column = classes.index(positive)
        metrics["roc_auc"] = float(
            roc_auc_score(y == positive, pipeline.predict_proba(X)[:, column])
        )
    return metrics


def metrics_table(metrics: Mapping[str, float], title: str = "metrics") -> Table:
    """A Rich table of ``metrics`` (counts as integers, scores with 4 decimals)."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        shown = f"{int(value)}" if name.endswith("_rows") else f"{value:.4f}"
        table.add_row(name, shown)
    return table


# ----------------------------------------------------------------------------- experiments


class ExperimentLog:
    """Logged training runs: log a run, list runs, compare two."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def log(
        self,
        *,
        model: str,
        version: int | None,
        dataset_name: str,
        dataset_version: int,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
    ) -> Experiment:
        return self.get(
            self.store.log_experiment(
                model=model,
                version=version,
                dataset_name=dataset_name,
                dataset_version=dataset_version,
                params=params,
                metrics=metrics,
            )
        )

    def get(self, experiment_id: int) -> Experiment:
        found = self.store.experiment(experiment_id)
        if found is None:
            raise NotFound(f"no experiment run {experiment_id}", experiment=experiment_id)
        return found

    def list(self, model: str | None = None) -> list[Experiment]:
        return self.store.experiments(model)

    def last(self) -> Experiment | None:
        runs = self.list()
        return runs[-1] if runs else None

    def compare(self, first: int, second: int) -> dict[str, Any]:
        """Side by side: every metric and parameter of two runs, with the metric differences."""
        a, b = self.get(first), self.get(second)
        metrics = []
        for name in dict.fromkeys([*a.metrics, *b.metrics]):
            x, y = a.metrics.get(name), b.metrics.get(name)
            delta = None if x is None or y is None else y - x
            metrics.append({"metric": name, "first": x, "second": y, "difference": delta})
        params = []
        for name in dict.fromkeys([*a.params, *b.params]):
            x, y = a.params.get(name), b.params.get(name)
            if x != y:
                params.append({"param": name, "first": x, "second": y})
        return {"first": a.as_dict(), "second": b.as_dict(), "metrics": metrics, "params": params}


def experiments_table_view(runs: Sequence[Experiment]) -> Table:
    """A Rich table listing runs with their main metric."""
    table = Table(title="experiments")
    for column in ("run", "model", "version", "dataset", "algorithm", "main metric"):
        table.add_column(column)
    for run in runs:
        main = _main_metric(run.metrics)
        table.add_row(
            str(run.id),
            run.model,
            str(run.version or "-"),
            f"{run.dataset_name} v{run.dataset_version}",
            str(run.params.get("algorithm", "-")),
            f"{main[0]} {main[1]:.4f}" if main else "-",
        )
    return table


def _main_metric(metrics: Mapping[str, float]) -> tuple[str, float] | None:
    for name in ("accuracy", "r2"):
        if name in metrics:
            return name, metrics[name]
    return None


MLFLOW_EXPERIMENT = "mlwarden-assistant"


def model_requirements(types: Iterable[str], base: Iterable[str] = ()) -> list[str]:
    """The pip requirements of a model whose objects have the qualified ``types``
    (``sklearn.pipeline.Pipeline``, ``lightgbm.sklearn.LGBMClassifier``): each installed
    distribution that provides one of their top-level modules, pinned to its version, with
    ``base``. Python's own modules (``builtins``) have no distribution and add nothing.

    >>> named = model_requirements(["sklearn.pipeline.Pipeline", "numpy.dtype", "builtins.int"])
    >>> [requirement.split("==")[0] for requirement in named]
    ['numpy', 'scikit-learn']
    """
    providers = importlib.metadata.packages_distributions()
    named = {
        dist: _pinned(dist) for name in types for dist in providers.get(name.split(".")[0], [])
    }
    # a requirement of ``base`` replaces the pin of its distribution
    named |= {
        re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]: requirement for requirement in base
    }
    return sorted(named.values())


def _pinned(distribution: str) -> str:
    return f"{distribution}=={importlib.metadata.version(distribution)}"


def log_to_mlflow(
    run_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    estimator: Any,
    data_dir: str | Path | None = None,
) -> str | None:
    """Log a run to MLflow tracking when the ``mlflow`` extra is installed and a tracking
    server is named (``MLFLOW_TRACKING_URI``): without one MLflow would quietly create a
    store in the current folder.

    Runs go to the experiment ``mlwarden-assistant``, made with an artifact location
    (:func:`~mlwarden.registry.mlflow.artifact_location`: beside a SQLite tracking database,
    under ``data_dir`` for another database) so that the model files never land in
    ``./mlruns`` of whatever folder the assistant runs in, MLflow's default for a database."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if importlib.util.find_spec("mlflow") is None or not uri:
        return None
    import mlflow

    from mlwarden.registry.artifacts import dump_model, skops_trusted_types
    from mlwarden.registry.mlflow import artifact_location

    flat = {k: str(v)[:500] for k, v in params.items()}
    types = skops_trusted_types(dump_model(estimator))
    # MLflow 3 stores the model with skops and asks which of its types to trust (those
    # mlwarden's own loader trusts, for a model trained right here); MLflow 2 cloudpickles it
    skops = "skops_trusted_types" in inspect.signature(mlflow.sklearn.log_model).parameters
    defaults = (
        mlflow.sklearn.get_default_pip_requirements(include_skops=True)
        if skops
        else mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True)
    )
    # Named, not inferred: MLflow's inference loads the model again in a subprocess to see
    # what it imports, about 5 s of every training logged (docs/benchmarks.md)
    options: dict[str, Any] = {"pip_requirements": model_requirements(types, defaults)}
    if skops:
        options |= {"serialization_format": "skops", "skops_trusted_types": types}
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    experiment = (
        found.experiment_id
        if found is not None
        else client.create_experiment(
            MLFLOW_EXPERIMENT, artifact_location=artifact_location(uri, data_dir)
        )
    )
    with mlflow.start_run(run_name=run_name, experiment_id=experiment) as run:
        mlflow.log_params(flat)
        mlflow.log_metrics({re.sub(r"[^\w./ -]", "_", k): float(v) for k, v in metrics.items()})
        mlflow.sklearn.log_model(estimator, "model", **options)
        return str(run.info.run_id)
