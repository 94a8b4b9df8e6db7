"""Fixtures of the API and gateway tests: real models, a real app, a tiny remote model server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import skops.io
from api_helpers import ELEC_FEATURES, RemoteModel, deploy_elec, make_settings
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from mlwarden.datasets import load
from mlwarden.server import create_app


@pytest.fixture(autouse=True)
def _numpy_rows_by_design() -> Iterator[None]:
    """The gateway sends NumPy rows in the fitted column order on purpose (see predictors);
    pytest resets warning filters per test, so the serving filter is restated here."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="X does not have valid feature names", category=UserWarning
        )
        yield


@pytest.fixture(scope="session")
def elec_frame() -> Any:
    return load("electricity").iloc[:5000]


@pytest.fixture(scope="session")
def elec_artifacts(elec_frame: Any) -> dict[str, bytes]:
    """Two real versions: a logistic regression, and one trained on other rows."""
    x, y = elec_frame[ELEC_FEATURES], elec_frame["target"]
    first = LogisticRegression(max_iter=500).fit(x.iloc[:2500], y.iloc[:2500])
    second = LogisticRegression(max_iter=500, C=0.01).fit(x.iloc[2500:], y.iloc[2500:])
    return {"v1": skops.io.dumps(first), "v2": skops.io.dumps(second)}


@pytest.fixture(scope="session")
def elec_rows(elec_frame: Any) -> list[dict[str, float]]:
    return elec_frame[ELEC_FEATURES].iloc[:50].to_dict(orient="records")


@pytest.fixture(scope="session")
def titanic_model() -> tuple[dict[str, Any], bytes, list[dict[str, Any]]]:
    """A pipeline with categorical features (one-hot) and missing ages: the DataFrame path."""
    frame = load("titanic")
    numeric, categorical = ["Age", "Fare", "Pclass"], ["Sex", "Embarked"]
    prep = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            ),
        ]
    )
    model = make_pipeline(prep, LogisticRegression(max_iter=500))
    model.fit(frame[numeric + categorical], frame["Survived"])
    spec = {
        "name": "titanic",
        "task": "classification",
        "target": "Survived",
        "features": [
            {"name": "Age", "type": "numeric"},
            {"name": "Fare", "type": "numeric"},
            {"name": "Pclass", "type": "integer"},
            {"name": "Sex", "type": "categorical", "categories": ["male", "female"]},
            {"name": "Embarked", "type": "categorical", "categories": ["C", "Q", "S"]},
        ],
    }
    sample = frame[numeric + categorical].iloc[:20].to_dict(orient="records")
    rows = [{k: (None if v != v else v) for k, v in row.items()} for row in sample]  # NaN→None
    return spec, skops.io.dumps(model), rows


@pytest.fixture(scope="session")
def bike_regressor() -> tuple[dict[str, Any], bytes]:
    frame = load("bike_sharing").iloc[:3000]
    features = ["temp", "hum", "windspeed"]
    model = LinearRegression().fit(frame[features], frame["cnt"])
    spec = {
        "name": "bikes",
        "task": "regression",
        "target": "cnt",
        "features": [{"name": n} for n in features],
    }
    return spec, skops.io.dumps(model)


@pytest.fixture
def client(tmp_path: Path, database_url: str) -> Iterator[TestClient]:
    """A running app (loopback, no auth) on a fresh SQLite or PostgreSQL database."""
    app = create_app(make_settings(tmp_path / "client", database_url))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[TestClient]:
    """A running app (loopback, no auth) on a fresh SQLite file."""
    app = create_app(make_settings(tmp_path / "sqlite"))
    with TestClient(app) as test_client:
        yield test_client


# ------------------------------------------------------------------ a remote model server


@pytest.fixture
def elec_client(sqlite_client: TestClient, elec_artifacts: dict[str, bytes]) -> TestClient:
    """``sqlite_client`` with ``elec`` registered, both versions uploaded, v1 live."""
    deploy_elec(sqlite_client, elec_artifacts)
    return sqlite_client


@pytest.fixture
def remote() -> Iterator[RemoteModel]:
    server = RemoteModel()
    yield server
    server.close()
