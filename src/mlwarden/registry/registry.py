"""The model registry: models, versions and their deployment, on top of ``Store``.

A version is a scikit-learn estimator saved with skops, or a remote HTTP endpoint. A sklearn
version keeps its training metrics, a sample of its training data (the future reference for
drift) and permutation feature importance (Breiman 2001, "Random Forests"; as implemented by
``sklearn.inspection.permutation_importance``) computed on a small subsample so registering
stays quick. Every deployment change (deploy, fallback, canary, shadow, disable, rollback,
undo) writes a new revision, an event on the model's timeline and an audit entry.

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
>>> registry.deploy("m", v.number, actor="me", reason="first").live_version
1
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlwarden.domain import Deployment, DeploymentState, ModelSpec, Task
from mlwarden.errors import Conflict, InvalidInput, NotFound
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
    """Register models and versions, and change how they are deployed — safely and audited."""

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
    ) -> VersionInfo:
        """Register a model served elsewhere: generic JSON ``{"instances": [...]}`` or the
        KServe / Open Inference Protocol v2 (``/v2/models/{remote_name}/infer``)."""
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

    # ---------------------------------------------------------------- deployment changes

    def _state(self, model: str, environment: str) -> DeploymentState:
        current = self.store.get_deployment(model, environment)
        if current is None:
            return DeploymentState()
        return DeploymentState.model_validate(
            current.model_dump(include=set(DeploymentState.model_fields))
        )

    def _change(
        self,
        model: str,
        kind: str,
        state: DeploymentState,
        *,
        actor: str,
        reason: str,
        environment: str,
        details: Mapping[str, Any] | None = None,
    ) -> Deployment:
        deployment = self.store.set_deployment(
            model, state, actor=actor, reason=reason, environment=environment
        )
        info = {
            "environment": environment,
            "revision": deployment.revision,
            "reason": reason,
            **(details or {}),
        }
        self.store.add_event(model, kind, actor, info)
        self.store.audit(actor, f"deployment.{kind}", model, info)
        return deployment

    def _update(
        self,
        model: str,
        kind: str,
        *,
        actor: str,
        reason: str,
        environment: str,
        details: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Deployment:
        """The current routing with ``fields`` changed, written as a new revision."""
        state = self._state(model, environment)
        for name, value in fields.items():
            setattr(state, name, value)
        return self._change(
            model,
            kind,
            state,
            actor=actor,
            reason=reason,
            environment=environment,
            details=details,
        )

    def set_deployment(
        self,
        model: str,
        state: DeploymentState,
        *,
        actor: str,
        reason: str = "",
        environment: str = "production",
    ) -> Deployment:
        """Replace the whole routing with ``state`` (a new revision). The event is ``deploy``
        when the live version changes, ``disable``/``enable`` when only that flag does, else
        ``deployment``; its details list every field that changed, from and to."""
        before = self.store.get_deployment(model, environment)
        fields = sorted(DeploymentState.model_fields)
        changes = {
            field: {
                "from": None if before is None else getattr(before, field),
                "to": getattr(state, field),
            }
            for field in fields
            if before is None or getattr(before, field) != getattr(state, field)
        }
        details: dict[str, Any] = {"changes": changes}
        if before is None or before.live_version != state.live_version:
            kind = "deploy"
            details |= {
                "version": state.live_version,
                "previous": None if before is None else before.live_version,
            }
        elif before.disabled != state.disabled:
            kind = "disable" if state.disabled else "enable"
        else:
            kind = "deployment"
        return self._change(
            model,
            kind,
            state,
            actor=actor,
            reason=reason,
            environment=environment,
            details=details,
        )

    def deploy(
        self,
        model: str,
        version: int,
        *,
        actor: str,
        reason: str = "",
        environment: str = "production",
    ) -> Deployment:
        """Make ``version`` the live version (a canary of that same version is retired)."""
        state = self._state(model, environment)
        previous = state.live_version
        state.live_version = version
        if state.canary_version == version:
            state.canary_version, state.canary_weight = None, 0.0
        return self._change(
            model,
            "deploy",
            state,
            actor=actor,
            reason=reason,
            environment=environment,
            details={"version": version, "previous": previous},
        )

    def set_fallback(
        self,
        model: str,
        version: int | None,
        *,
        actor: str,
        reason: str = "",
        environment: str = "production",
    ) -> Deployment:
        return self._update(
            model,
            "fallback",
            actor=actor,
            reason=reason,
            environment=environment,
            details={"version": version},
            fallback_version=version,
        )

    def set_canary(
        self,
        model: str,
        version: int | None,
        weight: float = 0.1,
        *,
        actor: str,
        reason: str = "",
        environment: str = "production",
    ) -> Deployment:
        """Send ``weight`` of the traffic to ``version`` (None removes the canary)."""
        if version is not None and not 0.0 < weight <= 1.0:
            raise InvalidInput(f"a canary weight must be in (0, 1], got {weight}")
        weight = weight if version is not None else 0.0
        return self._update(
            model,
            "canary",
            actor=actor,
            reason=reason,
            environment=environment,
            details={"version": version, "weight": weight},
            canary_version=version,
            canary_weight=weight,
        )

    def set_shadow(
        self,
        model: str,
        version: int | None,
        *,
        actor: str,
        reason: str = "",
        environment: str = "production",
    ) -> Deployment:
        return self._update(
            model,
            "shadow",
            actor=actor,
            reason=reason,
            environment=environment,
            details={"version": version},
            shadow_version=version,
        )

    def disable(
        self,
        model: str,
        *,
        actor: str,
        reason: str = "",
        default_response: Any = None,
        environment: str = "production",
    ) -> Deployment:
        """Stop serving (503, or ``default_response`` when given)."""
        return self._update(
            model,
            "disable",
            actor=actor,
            reason=reason,
            environment=environment,
            details={"default_response": default_response},
            disabled=True,
            default_response=default_response,
        )

    def enable(
        self, model: str, *, actor: str, reason: str = "", environment: str = "production"
    ) -> Deployment:
        return self._update(
            model,
            "enable",
            actor=actor,
            reason=reason,
            environment=environment,
            disabled=False,
            default_response=None,
        )

    def rollback(
        self, model: str, *, actor: str, reason: str = "", environment: str = "production"
    ) -> Deployment:
        """Go back to the last known-good live version: the most recent earlier live version,
        different from the current one, whose health is not "unhealthy"."""
        history = self.store.deployment_history(model, environment)
        if not history or history[0].live_version is None:
            raise NotFound(f"model {model!r} has no live version in {environment!r} to roll back")
        current = history[0].live_version
        health = {v.number: v.health for v in self.store.list_versions(model)}
        for revision in history[1:]:
            candidate = revision.live_version
            if candidate is None or candidate == current:
                continue
            if health.get(candidate) == "unhealthy":
                continue
            state = self._state(model, environment)
            state.live_version = candidate
            if state.canary_version == candidate:
                state.canary_version, state.canary_weight = None, 0.0
            return self._change(
                model,
                "rollback",
                state,
                actor=actor,
                reason=reason,
                environment=environment,
                details={"from": current, "to": candidate, "from_revision": revision.revision},
            )
        raise Conflict(
            f"no known-good version to roll back to for model {model!r}: every earlier live "
            f"version is the current one ({current}) or marked unhealthy",
            model=model,
        )

    def undo(
        self,
        model: str,
        revision: int,
        *,
        actor: str,
        reason: str = "",
        environment: str = "production",
    ) -> Deployment:
        """Restore deployment revision ``revision`` (written as a new revision)."""
        deployment = self.store.undo_deployment(
            model,
            revision,
            actor=actor,
            reason=reason or f"undo to revision {revision}",
            environment=environment,
        )
        info = {
            "environment": environment,
            "revision": deployment.revision,
            "restored": revision,
            "reason": reason,
        }
        self.store.add_event(model, "undo", actor, info)
        self.store.audit(actor, "deployment.undo", model, info)
        return deployment


__all__ = ["Registry", "feature_importance", "training_metrics"]
