"""Data and models of a scenario: load the dataset, split reference and stream, train recipes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from mlwarden import datasets
from mlwarden.agent.operations.service import Operations
from mlwarden.assistant.training import build_pipeline, feature_specs, make_estimator
from mlwarden.domain import ModelSpec, Task
from mlwarden.errors import InvalidInput, NotFound
from mlwarden.registry.registry import Registry
from mlwarden.scenarios.spec import ModelRecipe, Scenario

LINEAR = {"logistic_regression", "linear_regression"}


HOLDOUT = 0.3  # share of the reference rows kept out of training: the monitor's baseline


@dataclass
class ScenarioData:
    """The reference rows and the stream rows, features and target.

    The reference rows are split: models train on ``train`` and ``holdout`` is registered as the
    version's reference sample, so the baseline performance (and the calibration of estimated
    performance) is measured on data the model has not seen, not on its own training rows.
    """

    spec: ModelSpec
    reference: pd.DataFrame
    stream: pd.DataFrame
    target: str
    task: Task

    @property
    def features(self) -> list[str]:
        return self.spec.feature_names

    @property
    def train(self) -> pd.DataFrame:
        return self.reference.iloc[: len(self.reference) - self._holdout_rows]

    @property
    def holdout(self) -> pd.DataFrame:
        return self.reference.iloc[len(self.reference) - self._holdout_rows :]

    @property
    def _holdout_rows(self) -> int:
        return int(len(self.reference) * HOLDOUT)


def load_frame(scenario: Scenario) -> pd.DataFrame:
    """The scenario's dataset: a bundled one by name, or a CSV/Parquet file by path."""
    if scenario.dataset in datasets.DATASETS:
        frame = datasets.load(scenario.dataset)
    else:
        path = Path(scenario.dataset)
        if not path.exists():
            known = ", ".join(sorted(datasets.DATASETS))
            raise NotFound(
                f"dataset {scenario.dataset!r} is neither a bundled dataset ({known}) nor a file"
            )
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    if scenario.time_column:
        if scenario.time_column not in frame.columns:
            raise InvalidInput(f"time column {scenario.time_column!r} is not in the dataset")
        frame = frame.sort_values(scenario.time_column, kind="stable").reset_index(drop=True)
    return frame


def prepare(scenario: Scenario, seed: int) -> ScenarioData:
    """Split the dataset into reference and stream rows, shuffled together when asked."""
    frame = load_frame(scenario)
    target = scenario.target or (
        datasets.DATASETS.get(scenario.dataset, None) and datasets.DATASETS[scenario.dataset].target
    )
    if not target or target not in frame.columns:
        raise InvalidInput(f"target {target!r} is not a column of the dataset")
    unknown = [c for c in scenario.drop_columns if c not in frame.columns]
    if unknown:
        raise InvalidInput(f"drop_columns names columns the dataset lacks: {unknown}")
    frame = frame.drop(columns=scenario.drop_columns)
    if scenario.time_column:
        frame = frame.drop(columns=scenario.time_column)
    (r0, r1), (s0, s1) = scenario.reference, scenario.stream
    if max(r1, s1) > len(frame):
        raise InvalidInput(
            f"the dataset has {len(frame)} rows; the scenario reads up to {max(r1, s1)}"
        )
    rows = pd.concat([frame.iloc[r0:r1], frame.iloc[s0:s1]], ignore_index=True)
    if scenario.shuffle:
        order = np.random.default_rng(seed).permutation(len(rows))
        rows = rows.iloc[order].reset_index(drop=True)
    for name in rows.columns:
        if name != target and not pd.api.types.is_numeric_dtype(rows[name]):
            rows[name] = rows[name].map(lambda v: v if pd.isna(v) else str(v)).astype(object)
        elif name != target:
            rows[name] = rows[name].astype(float)
    task = scenario.task or (
        Task(datasets.DATASETS[scenario.dataset].task)
        if scenario.dataset in datasets.DATASETS
        else Task.CLASSIFICATION
    )
    reference = rows.iloc[: r1 - r0].reset_index(drop=True)
    stream = rows.iloc[r1 - r0 :].reset_index(drop=True)
    X = reference.drop(columns=target)
    specs = feature_specs(X, integer_columns=set())
    positive = None
    if task is Task.CLASSIFICATION:
        classes = sorted(pd.unique(reference[target].dropna()))
        positive = _native(classes[-1]) if len(classes) == 2 else None
    spec = ModelSpec(
        name=scenario.name.replace("_", "-"),
        task=task,
        features=specs,
        target=target,
        positive_class=positive,
        description=scenario.description,
    )
    return ScenarioData(spec, reference, stream, target, task)


def train(
    recipe: ModelRecipe, data: ScenarioData, *, seed: int, shuffle_labels: bool = False
) -> Any:
    """Fit the recipe on the training rows (on shuffled labels for a deliberately bad model)."""
    X = data.train[data.features]
    y = data.train[data.target]
    if shuffle_labels:
        y = pd.Series(np.random.default_rng(seed + 1).permutation(y.to_numpy()), index=y.index)
    estimator = make_estimator(data.task, recipe.algorithm, random_state=seed)
    if recipe.params:
        estimator.set_params(**recipe.params)
    pipeline = build_pipeline(X, estimator, scale=recipe.algorithm in LINEAR)
    return pipeline.fit(X, y)


class Installed(NamedTuple):
    champion: Any  # the fitted estimator of version 1
    fallback_version: int | None
    fallback: Any = None  # its fitted estimator


def install_models(
    registry: Registry, data: ScenarioData, scenario: Scenario, *, seed: int, actor: str
) -> Installed:
    """Register the scenario's model with the champion as version 1, live, and (when the
    scenario names one) the lighter fallback as its fallback version.

    Both keep the held-out rows as their reference sample."""
    X, y = data.holdout[data.features], data.holdout[data.target]
    champion = train(scenario.model, data, seed=seed)
    registry.register_model(data.spec, actor=actor)
    registry.add_sklearn_version(
        data.spec.name,
        champion,
        X_reference=X,
        y_reference=y,
        description=f"{scenario.model.algorithm} trained on the reference rows",
        actor=actor,
    )
    ops = Operations(registry.store, actor=actor)
    ops.deploy(data.spec.name, 1, reason="initial deployment")
    if scenario.fallback is None:
        return Installed(champion, None)
    fallback = train(scenario.fallback, data, seed=seed)
    info = registry.add_sklearn_version(
        data.spec.name,
        fallback,
        X_reference=X,
        y_reference=y,
        importance=False,
        description=f"fallback: {scenario.fallback.algorithm}",
        actor=actor,
    )
    ops.set_fallback(data.spec.name, info.number, reason="lighter fallback model")
    return Installed(champion, info.number, fallback)


def _native(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def install_bad_version(
    registry: Registry, data: ScenarioData, scenario: Scenario, *, seed: int, actor: str
) -> tuple[int, Any]:
    """Register (not deploy) the version a ``bad_deploy`` fault releases: the champion's
    recipe fitted on shuffled labels (a broken label join); its number and estimator."""
    bad = train(scenario.model, data, seed=seed, shuffle_labels=True)
    info = registry.add_sklearn_version(
        data.spec.name,
        bad,
        X_reference=data.holdout[data.features],
        y_reference=data.holdout[data.target],
        importance=False,
        description="retrained on a broken label join (the scenario's bad deploy)",
        actor=actor,
    )
    return info.number, bad
