"""A model file cannot run code: exact-type allow-list, no callables, checked tree arrays."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from artifact_payloads import X, Y, array_files, edit_array, payloads
from fastapi.testclient import TestClient
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_selection import SelectKBest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from mlwarden.assistant.training import build_pipeline, make_estimator
from mlwarden.domain import Task
from mlwarden.errors import InvalidArtifact
from mlwarden.registry import dump_model, load_model
from mlwarden.registry.artifacts import skops_trusted_types, untrusted_types
from mlwarden.server import create_app
from mlwarden.settings import Settings

SPEC = {
    "name": "attacked",
    "task": "classification",
    "features": [{"name": "x", "type": "numeric"}],
}


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "canary.txt"
    yield path
    assert not path.exists(), "the model file's code ran"


def _refused_names(error: InvalidArtifact) -> list[str]:
    names: list[str] = error.detail["untrusted_types"]
    return names


@pytest.mark.parametrize(
    "payload",
    [
        "full_like+vectorize(exec)",
        "eval",
        "eval as func",
        "partial(exec)",
        "methodcaller",
        "frompyfunc(exec)",
        "frompyfunc as func",
        "bound method",
        "dict key type exec",
        "protocol 0 function",
    ],
)
def test_load_model_refuses_code_in_the_file(payload: str, canary: Path) -> None:
    data, expected = payloads(canary)[payload]
    with pytest.raises(InvalidArtifact, match="not trusted") as caught:
        load_model(data)
    refused = _refused_names(caught.value)
    for name in expected:
        assert any(name in one for one in refused), (name, refused)
        assert name in caught.value.message
    assert untrusted_types(data) == refused


def test_the_reported_attack_ran_code_under_the_old_trust(canary: Path) -> None:
    """The payload is real: trusted as the old module prefixes did, it writes the canary."""
    data, _ = payloads(canary)["full_like+vectorize(exec)"]
    model = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    with pytest.raises(ValueError):  # exec returns None, which the classifier then rejects
        model.predict(np.array([[1.0]]))
    assert canary.exists()
    canary.unlink()  # the fixture checks that nothing else wrote it


def test_dump_model_refuses_what_load_model_would_refuse() -> None:
    with pytest.raises(InvalidArtifact, match=r"numpy\.full_like \(callable\)"):
        dump_model(FunctionTransformer(np.full_like, kw_args={"fill_value": 0}))


def test_listed_functions_and_plain_estimators_still_load() -> None:
    regressor = TransformedTargetRegressor(
        make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LinearRegression()),
        func=np.log1p,
        inverse_func=np.expm1,
    ).fit(X, [1.0, 2.0, 4.0, 8.0])
    loaded = load_model(dump_model(regressor))
    assert loaded.predict(X).tolist() == regressor.predict(X).tolist()
    selector = make_pipeline(SelectKBest(k=1), LinearRegression()).fit(np.c_[X, X], Y)
    assert load_model(dump_model(selector)).predict(np.c_[X, X]).tolist() == (
        selector.predict(np.c_[X, X]).tolist()
    )


def _training_frame() -> tuple[pd.DataFrame, dict[Task, Any]]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=120),
            "b": rng.integers(0, 5, 120).astype(float),
            "c": pd.Series(rng.choice(["x", "y", "z"], 120), dtype=object),
        }
    )
    frame.loc[3, "a"] = np.nan
    targets = {
        Task.CLASSIFICATION: np.where(frame["a"].fillna(0) > 0, "yes", "no"),
        Task.REGRESSION: rng.normal(size=120),
    }
    return frame, targets


@pytest.mark.parametrize(
    ("task", "algorithm"),
    [
        (Task.CLASSIFICATION, "logistic_regression"),
        (Task.REGRESSION, "linear_regression"),
        (Task.CLASSIFICATION, "random_forest"),
        (Task.REGRESSION, "random_forest"),
        (Task.CLASSIFICATION, "gradient_boosting"),
        (Task.REGRESSION, "gradient_boosting"),
        (Task.CLASSIFICATION, "lightgbm"),
        (Task.REGRESSION, "lightgbm"),
    ],
)
def test_every_model_the_product_trains_saves_and_loads(task: Task, algorithm: str) -> None:
    frame, targets = _training_frame()
    estimator = make_estimator(task, algorithm)
    if hasattr(estimator, "n_estimators"):
        estimator.set_params(n_estimators=10)
    scale = algorithm in ("logistic_regression", "linear_regression")
    pipeline = build_pipeline(frame, estimator, scale=scale).fit(frame, targets[task])
    data = dump_model(pipeline)
    assert untrusted_types(data) == []
    assert set(skops_trusted_types(data)) <= set(sio.get_untrusted_types(data=data))
    assert load_model(data).predict(frame).tolist() == pipeline.predict(frame).tolist()


# ------------------------------------------------------------------ tree arrays


def _forest_file() -> tuple[bytes, str]:
    forest = RandomForestClassifier(n_estimators=2, bootstrap=False, random_state=0)
    data = dump_model(forest.fit(np.c_[X, X * 2], Y))
    return data, array_files(data, "TreeNode", "nodes")[0]  # its root splits: 4 rows, 2 classes


@pytest.mark.parametrize(
    ("field", "value"),
    [("left_child", 10**6), ("right_child", 10**6), ("left_child", 0), ("feature", 10**6)],
)
def test_a_tree_pointing_outside_itself_is_refused(field: str, value: int) -> None:
    data, nodes = _forest_file()
    assert load_model(data).predict(np.c_[X, X * 2]).tolist() == Y

    def corrupt(array: np.ndarray) -> None:
        array[field][0] = value  # the root: 0 as its own child would loop for ever

    with pytest.raises(InvalidArtifact, match="point outside"):
        load_model(edit_array(data, nodes, corrupt))


def test_a_gradient_boosting_tree_pointing_outside_the_features_is_refused() -> None:
    model = HistGradientBoostingClassifier(max_iter=2, min_samples_leaf=1).fit(np.c_[X, X], Y)
    data = dump_model(model)
    assert load_model(data).predict(np.c_[X, X]).tolist() == model.predict(np.c_[X, X]).tolist()
    predictors = array_files(data, "ObjectNode", "nodes")
    assert predictors

    def corrupt(array: np.ndarray) -> None:
        array["feature_idx"][~array["is_leaf"].astype(bool)] = 10**6

    with pytest.raises(InvalidArtifact, match="point outside"):
        load_model(edit_array(data, predictors[0], corrupt))


# ------------------------------------------------------------------ over HTTP


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as client:
        assert client.post("/v1/models", json=SPEC).status_code == 201
        yield client


def test_upload_route_refuses_every_payload_and_stores_nothing(
    http: TestClient, canary: Path
) -> None:
    for name, (data, expected) in payloads(canary).items():
        multipart = http.post("/v1/models/attacked/versions", files={"file": ("m.skops", data)})
        raw = http.post(
            "/v1/models/attacked/versions",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        for response in (multipart, raw):
            assert response.status_code == 422, (name, response.text)
            body = response.json()
            assert "not trusted" in body["error"], name
            refused = body["detail"]["untrusted_types"]
            for one in expected:
                assert any(one in named for named in refused), (name, one, refused)
    assert http.get("/v1/models/attacked/versions").json() == []
    assert not os.path.exists(canary)


def test_a_shared_model_is_loaded_once_per_bytes_and_still_checked(canary: Path) -> None:
    from mlwarden.registry.artifacts import _SHARED_LIMIT, load_shared_model

    first = dump_model(LinearRegression().fit(X, Y))
    second = dump_model(LinearRegression(fit_intercept=False).fit(X, Y))
    loaded = load_shared_model(first)
    assert load_shared_model(bytes(first)) is loaded  # equal bytes, not the same object
    assert load_shared_model(second) is not loaded
    np.testing.assert_array_equal(loaded.predict(X), load_model(first).predict(X))
    # the oldest is let go once more than the limit were used since
    for k in range(_SHARED_LIMIT):
        load_shared_model(dump_model(LinearRegression().fit(X, np.asarray(Y) + k + 1)))
    assert load_shared_model(first) is not loaded
    # a refused file is refused every time, never kept
    for _ in range(2):
        with pytest.raises(InvalidArtifact):
            load_shared_model(payloads(canary)["eval"][0])
