"""Registry: real scikit-learn models, skops refusal; deployments in agent/test_operations.py."""

from __future__ import annotations

import io
import zipfile
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from mlwarden.datasets import load
from mlwarden.domain import FeatureSpec, FeatureType, ModelSpec, Task
from mlwarden.errors import (
    InvalidArtifact,
    InvalidInput,
    ServiceUnavailable,
)
from mlwarden.registry import Registry, dump_model, load_model
from mlwarden.registry.mlflow import import_from_mlflow
from mlwarden.store import Store

FEATURES = ["Pclass", "Sex", "Age", "Fare", "Embarked"]
SPEC = ModelSpec(
    name="titanic",
    task=Task.CLASSIFICATION,
    features=[
        FeatureSpec(name="Pclass", type=FeatureType.INTEGER),
        FeatureSpec(name="Sex", type=FeatureType.CATEGORICAL, categories=["female", "male"]),
        FeatureSpec(name="Age"),
        FeatureSpec(name="Fare"),
        FeatureSpec(name="Embarked", type=FeatureType.CATEGORICAL),
    ],
    target="Survived",
    positive_class=1,
)


@pytest.fixture(scope="module")
def titanic() -> tuple[pd.DataFrame, pd.Series]:
    frame = load("titanic")
    return frame[FEATURES], frame["Survived"]


def pipeline() -> object:
    pre = ColumnTransformer(
        [
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
                ),
                ["Sex", "Embarked"],
            ),
            ("num", SimpleImputer(), ["Pclass", "Age", "Fare"]),
        ]
    )
    return make_pipeline(pre, LogisticRegression(max_iter=500))


@pytest.fixture
def registry(sqlite_store: Store) -> Registry:
    reg = Registry(sqlite_store)
    reg.register_model(SPEC, actor="alice")
    return reg


def test_pipeline_version_round_trips_with_metrics_reference_and_importance(
    registry: Registry, titanic: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, y = titanic
    model = pipeline().fit(X, y)
    version = registry.add_sklearn_version(
        "titanic", model, X_reference=X, y_reference=y, reference_rows=200, actor="alice"
    )
    assert version.number == 1 and version.kind == "sklearn"
    assert 0.7 < version.training_metrics["accuracy"] < 0.9
    assert 0.75 < version.training_metrics["roc_auc"] <= 1.0
    assert max(version.feature_importance, key=version.feature_importance.get) == "Sex"
    sample = registry.store.reference_sample("titanic", 1)
    assert len(sample) == 200 and set(sample[0]) == {*FEATURES, "Survived"}
    assert all(isinstance(row["Sex"], str) for row in sample)
    restored = load_model(registry.store.load_artifact("titanic", 1))
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


def test_given_metrics_are_kept(registry: Registry, titanic) -> None:
    X, y = titanic
    model = pipeline().fit(X, y)
    v = registry.add_sklearn_version(
        "titanic", model, X_reference=X, y_reference=y, metrics={"accuracy": 0.5}, importance=False
    )
    assert v.training_metrics == {"accuracy": 0.5} and v.feature_importance is None


def test_skops_refuses_untrusted_types_random_and_truncated_bytes() -> None:
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    data = dump_model(LogisticRegression().fit(X, [0, 0, 1, 1]))
    assert load_model(data).predict([[3.0]]).tolist() == [1]
    # a type outside sklearn/numpy/scipy/builtins is refused, and named
    foreign = sio.dumps({"model": LogisticRegression(), "ratio": Fraction(1, 3)})
    with pytest.raises(InvalidArtifact, match=r"not trusted: fractions\.Fraction"):
        load_model(foreign)
    assert load_model(foreign, trusted=["fractions.Fraction"])["ratio"] == Fraction(1, 3)
    with pytest.raises(InvalidArtifact, match="not a skops file"):
        load_model(np.random.default_rng(0).bytes(2048))
    with pytest.raises(InvalidArtifact, match=r"not a skops file|damaged"):
        load_model(data[: len(data) // 2])
    with pytest.raises(InvalidArtifact, match="empty"):
        load_model(b"")
    other_zip = io.BytesIO()
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(InvalidArtifact, match=r"no schema\.json"):
        load_model(other_zip.getvalue())


def test_remote_versions(registry: Registry) -> None:
    v = registry.add_remote_version(
        "titanic", "http://127.0.0.1:9/v2", protocol="v2", timeout_ms=300
    )
    assert v.endpoint == {
        "url": "http://127.0.0.1:9/v2",
        "protocol": "v2",
        "remote_name": "titanic",
        "headers": {},
    }
    with pytest.raises(InvalidInput, match="http"):
        registry.add_remote_version("titanic", "ftp://x")


def test_mlflow_import_names_the_extra_when_missing(
    registry: Registry, titanic, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the extra were not installed
    X, _ = titanic
    with pytest.raises(ServiceUnavailable, match=r'pip install "mlwarden\[mlflow\]"'):
        import_from_mlflow(registry, "titanic", "models:/titanic/1", X_reference=X)


def test_a_model_registered_in_mlflow_is_imported_as_a_safe_version(
    registry: Registry, titanic, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import warnings

    import mlflow
    import mlflow.sklearn
    from typer.testing import CliRunner

    from mlwarden.cli.main import app

    X, y = titanic
    estimator = pipeline().fit(X, y)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)  # where this test logs the model
    # the model's files go under tmp_path too: MLflow's default is ./mlruns in the working
    # folder, which would leave them in the checkout and share them between pytest workers
    experiment = mlflow.create_experiment(
        "titanic", artifact_location=(tmp_path / "mlartifacts").as_uri()
    )
    with warnings.catch_warnings(), mlflow.start_run(experiment_id=experiment):
        warnings.simplefilter("ignore")
        mlflow.sklearn.log_model(
            estimator,
            name="model",
            registered_model_name="titanic-mlflow",
            # MLflow 3 stores scikit-learn models with skops too, and asks which types to trust
            skops_trusted_types=["numpy.dtype"],
            # named: MLflow would infer them by loading the model in a subprocess (about 5 s)
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        )
    reference = tmp_path / "reference.csv"
    pd.concat([X, y], axis=1).iloc[:400].to_csv(reference, index=False)
    database = str(registry.store.engine.url)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # mlwarden is told where the registry is
    runner = CliRunner()
    args = [
        "import-mlflow",
        "titanic",
        "models:/titanic-mlflow/1",
        "--reference",
        str(reference),
        "--tracking-uri",
        tracking,
        "--database-url",
        database,
        # the store's folder (spool, journals) goes under tmp_path, not ./mlwarden-data
        "--data-dir",
        str(tmp_path / "data"),
    ]
    done = runner.invoke(app, [*args, "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {
        "model": "titanic",
        "version": 1,
        "source": "models:/titanic-mlflow/1",
    }
    # what mlwarden keeps is a skops artifact that predicts exactly like MLflow's model
    stored = load_model(registry.store.load_artifact("titanic", 1))
    assert (stored.predict(X) == estimator.predict(X)).all()
    assert registry.store.get_version("titanic", 1).description == (
        "imported from MLflow models:/titanic-mlflow/1"
    )
    assert len(registry.store.reference_sample("titanic", 1) or []) == 400
    # an unknown MLflow model or a reference without the features: a clear error, exit 1
    missing = runner.invoke(app, [*args[:2], "models:/nothing-here/1", *args[3:]])
    assert missing.exit_code == 1 and "MLflow cannot load models:/nothing-here/1" in (
        missing.output
    )
    X.drop(columns=["Fare"]).to_csv(reference, index=False)
    no_fare = runner.invoke(app, args)
    assert no_fare.exit_code == 1 and "lacks the model's features ['Fare']" in no_fare.output
