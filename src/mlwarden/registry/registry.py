"""The model registry: models, versions and their deployment, on top of ``Store``.

A version is a scikit-learn estimator saved with skops, or a remote HTTP endpoint. A sklearn
version keeps its training metrics, a sample of its training data (the future reference for
drift) and permutation feature importance (Breiman 2001, "Random Forests"; as implemented by
``sklearn.inspection.permutation_importance``) computed on a small subsample so registering
stays quick. How versions are deployed is changed through ``agent.operations`` only (the one
writer of deployment revisions).

>>> from sklearn.linear_model import LogisticRegression
>>> import pandas as pd
>>> from mlwarden.domain import FeatureSpec, ModelSpec
>>> from mlwarden.store import Store
>>> registry = Registry(Store("sqlite://"))
>>> registry.register_model(ModelSpec(name="m", task="classification",
...                                   features=[FeatureSpec(name="x")], target="y"))
>>> X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0] * 10}); y = [0, 0, 1, 1] * 10
>>> v = registry.add_sklearn_version("m", LogisticRegression().fit(X, y), X_reference=X,
...                                  y_reference=y)
>>> v.number, sorted(v.training_metrics)
(1, ['accuracy', 'f1_macro', 'log_loss', 'roc_auc', 'rows'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlwarden.domain import ModelSpec, Task
from mlwarden.errors import InvalidInput
from mlwarden.registry.artifacts import dump_model
from mlwarden.store import Store, VersionInfo

REFERENCE_ROWS = 5_000
IMPORTANCE_ROWS = 500
Protocol = Literal["json", "v2"]


def training_metrics(
    task: Task, estimator: Any, X: pd.DataFrame, y: Sequence[Any] | np.ndarray
) -> dict:
    """Metrics of ``estimator`` on (X, y): accuracy/F1/ROC AUC/log loss or MAE/RMSE/R²."""
    from sklearn import metrics as m

    y_true = np.asarray(y)
    predicted = estimator.predict(X)
    if task is Task.REGRESSION:
        return {
            "mae": float(m.mean_absolute_error(y_true, predicted)),
            "rmse": float(np.sqrt(m.mean_squared_error(y_true, predicted))),
            "r2": float(m.r2_score(y_true, predicted)),
            "rows": len(y_true),
        }
    result: dict[str, Any] = {
        "accuracy": float(m.accuracy_score(y_true, predicted)),
        "f1_macro": float(m.f1_score(y_true, predicted, average="macro")),
        "rows": len(y_true),
    }
    if hasattr(estimator, "predict_proba") and len(np.unique(y_true)) > 1:
        proba = estimator.predict_proba(X)
        classes = list(estimator.classes_)
        try:
            if len(classes) == 2:
                result["roc_auc"] = float(m.roc_auc_score(y_true == classes[1], proba[:, 1]))
            else:
                result["roc_auc"] = float(
                    m.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
                )
            result["log_loss"] = float(m.log_loss(y_true, proba, labels=classes))
        except ValueError:
            pass  # a class of the model missing from the sample: leave these out
    return result


def feature_importance(
    task: Task,
    estimator: Any,
    X: pd.DataFrame,
    y: Sequence[Any] | np.ndarray,
    *,
    rows: int = IMPORTANCE_ROWS,
) -> dict[str, float]:
    """Permutation importance per feature on at most ``rows`` rows (seeded, 3 repeats)."""
    from sklearn.inspection import permutation_importance

    y_arr = np.asarray(y)
    if len(X) > rows:
        pick = np.random.default_rng(0).choice(len(X), rows, replace=False)
        X, y_arr = X.iloc[pick], y_arr[pick]
    scoring = "r2" if task is Task.REGRESSION else "accuracy"
    result = permutation_importance(
        estimator, X, y_arr, n_repeats=3, random_state=0, scoring=scoring, n_jobs=1
    )
    return {
        str(name): float(value)
        for name, value in zip(X.columns, result.importances_mean, strict=True)
    }


def _json_safe(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values (NaN → None, numpy scalars → Python)."""
    clean = frame.astype(object).where(frame.notna(), None)
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in clean.to_dict(orient="records")
    ]


class Registry:
    """Register models and versions (``agent.operations`` deploys them)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ---------------------------------------------------------------- models and versions

    def register_model(self, spec: ModelSpec, actor: str = "system") -> None:
        self.store.create_model(spec, actor=actor)

    def add_sklearn_version(
        self,
        model: str,
        estimator: Any,
        *,
        X_reference: pd.DataFrame,
        y_reference: Sequence[Any] | np.ndarray | None = None,
        metrics: Mapping[str, Any] | None = None,
        description: str = "",
        timeout_ms: float | None = None,
        reference_rows: int = REFERENCE_ROWS,
        importance: bool = True,
        actor: str = "system",
    ) -> VersionInfo:
        """Store a fitted estimator (or pipeline) with its reference sample and metrics.

        ``X_reference`` must hold every feature of the model's schema. When ``metrics`` is not
        given and ``y_reference`` is, training metrics are computed on the sample. The stored
        reference keeps at most ``reference_rows`` rows (seeded sample), with the target.
        """
        spec = self.store.get_model(model)
        if not isinstance(X_reference, pd.DataFrame):
            raise InvalidInput("X_reference must be a pandas DataFrame with the feature columns")
        missing = [f for f in spec.feature_names if f not in X_reference.columns]
        if missing:
            raise InvalidInput(
                f"X_reference lacks features of model {model!r}: {missing}", missing=missing
            )
        X = X_reference[spec.feature_names]
        if y_reference is not None and len(y_reference) != len(X):
            raise InvalidInput("X_reference and y_reference have different lengths")
        artifact = dump_model(estimator)
        computed = dict(metrics) if metrics is not None else {}
        if metrics is None and y_reference is not None:
            computed = training_metrics(spec.task, estimator, X, y_reference)
        importances = (
            feature_importance(spec.task, estimator, X, y_reference)
            if importance and y_reference is not None
            else None
        )
        sample = X.copy()
        if y_reference is not None:
            sample[spec.target or "target"] = np.asarray(y_reference)
        if len(sample) > reference_rows:
            sample = sample.sample(n=reference_rows, random_state=0)
        return self.store.add_version(
            model,
            kind="sklearn",
            artifact=artifact,
            timeout_ms=timeout_ms,
            training_metrics=computed,
            reference_sample=_json_safe(sample),
            feature_importance=importances,
            description=description,
            actor=actor,
        )

    def add_remote_version(
        self,
        model: str,
        url: str,
        *,
        protocol: Protocol = "json",
        remote_name: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_ms: float | None = None,
        reference: list[dict[str, Any]] | None = None,
        metrics: Mapping[str, Any] | None = None,
        description: str = "",
        actor: str = "system",
        response: Mapping[str, str] | None = None,
    ) -> VersionInfo:
        """Register a model served elsewhere: generic JSON ``{"instances": [...]}`` or the
        KServe / Open Inference Protocol v2 (``/v2/models/{remote_name}/infer``); ``response``
        maps an answer shape the generic protocol does not read by itself (the serving
        layer's ``ResponseMapping``, which the API checks it against)."""
        if protocol not in ("json", "v2"):
            raise InvalidInput(f"protocol must be 'json' or 'v2', got {protocol!r}")
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"the endpoint must be an http(s) URL, got {url!r}")
        if protocol == "v2" and not remote_name:
            remote_name = model
        endpoint = {
            "url": url,
            "protocol": protocol,
            "remote_name": remote_name,
            "headers": dict(headers or {}),
        }
        if response:
            endpoint["response"] = {str(k): str(v) for k, v in response.items()}
        return self.store.add_version(
            model,
            kind="remote",
            endpoint=endpoint,
            timeout_ms=timeout_ms,
            training_metrics=dict(metrics or {}),
            reference_sample=reference,
            description=description,
            actor=actor,
        )


__all__ = ["Registry", "feature_importance", "training_metrics"]
