"""One prediction explained through the API, on real scikit-learn models: exact Shapley values
against the reference point (a linear model's own terms; they add up to the answer's change
for a pipeline with categories too), occlusion, and the refusals."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import skops.io
from api_helpers import ELEC_FEATURES, deploy_elec, flush, state_of
from fastapi.testclient import TestClient
from sklearn.ensemble import RandomForestClassifier

from mlwarden.datasets import load


def _register(
    client: TestClient, spec: dict[str, Any], artifact: bytes, reference: list | None = None
) -> None:
    assert client.post("/v1/models", json=spec).status_code == 201
    extra = {} if reference is None else {"reference": json.dumps(reference)}
    response = client.post(
        f"/v1/models/{spec['name']}/versions",
        files={"file": ("v1.skops", artifact, "application/octet-stream")},
        data=extra,
    )
    assert response.status_code == 201, response.text
    deployed = client.put(
        f"/v1/models/{spec['name']}/deployment", json={"live_version": 1, "reason": "first"}
    )
    assert deployed.status_code == 200, deployed.text


def test_a_linear_models_shapley_values_are_its_own_terms_against_recorded_inputs(
    sqlite_client: TestClient, bike_regressor: tuple[dict[str, Any], bytes]
) -> None:
    spec, artifact = bike_regressor
    _register(sqlite_client, spec, artifact)  # no reference sample: recorded inputs serve
    frame = load("bike_sharing").iloc[3000:3200]
    names = [f["name"] for f in spec["features"]]
    rows = frame[names].to_dict(orient="records")
    assert (
        sqlite_client.post("/v1/models/bikes/predict", json={"instances": rows}).status_code == 200
    )
    flush(sqlite_client)
    instance = rows[7]
    response = sqlite_client.post("/v1/models/bikes/explain", json={"instance": instance})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["method"] == "shapley" and body["output"] == "predicted value"
    assert body["version"] == 1
    model = skops.io.loads(artifact, trusted=["sklearn.linear_model._base.LinearRegression"])
    assert body["value"] == pytest.approx(float(model.predict(frame[names].iloc[[7]])[0]))
    means = frame[names].mean()
    for row in body["contributions"]:
        k = names.index(row["feature"])
        assert row["reference"] == pytest.approx(means.iloc[k])
        expected = model.coef_[k] * (instance[row["feature"]] - means.iloc[k])
        assert row["contribution"] == pytest.approx(expected, rel=1e-6, abs=1e-6)
    shares = [abs(r["contribution"]) for r in body["contributions"]]
    assert shares == sorted(shares, reverse=True)  # the largest first
    total = sum(r["contribution"] for r in body["contributions"])
    assert total == pytest.approx(body["value"] - body["reference_value"])


def test_a_pipeline_with_categories_is_explained_by_shapley_values_and_by_occlusion(
    sqlite_client: TestClient, titanic_model: tuple[dict[str, Any], bytes, list[dict[str, Any]]]
) -> None:
    spec, artifact, _sample = titanic_model
    frame = load("titanic")
    reference = [
        {k: (None if v != v else v) for k, v in row.items()}
        for row in frame[["Age", "Fare", "Pclass", "Sex", "Embarked"]].to_dict(orient="records")
    ]
    _register(sqlite_client, spec, artifact, reference)
    lady = {"Age": 30.0, "Fare": 80.0, "Pclass": 1, "Sex": "female", "Embarked": "C"}
    exact = sqlite_client.post("/v1/models/titanic/explain", json={"instance": lady}).json()
    assert exact["method"] == "shapley" and exact["prediction"] == 1
    assert exact["output"] == "probability of 1" and exact["value"] > 0.8
    # the typical passenger: a man in third class, embarked at Southampton, who died
    by_feature = {r["feature"]: r for r in exact["contributions"]}
    assert by_feature["Sex"]["reference"] == "male" and by_feature["Embarked"]["reference"] == "S"
    assert exact["reference_value"] < 0.5
    assert exact["contributions"][0]["feature"] == "Sex" and by_feature["Sex"]["contribution"] > 0.2
    total = sum(r["contribution"] for r in exact["contributions"])
    assert total == pytest.approx(exact["value"] - exact["reference_value"], abs=1e-9)
    occlusion = sqlite_client.post(
        "/v1/models/titanic/explain", json={"instance": lady, "method": "occlusion"}
    ).json()
    assert occlusion["method"] == "occlusion" and occlusion["value"] == exact["value"]
    assert occlusion["contributions"][0]["feature"] == "Sex"
    # refusals: a bad instance (as a prediction would be), an unknown version or method
    bad = sqlite_client.post("/v1/models/titanic/explain", json={"instance": {"Age": "old"}})
    assert bad.status_code == 422 and "invalid input" in bad.json()["error"]
    missing = sqlite_client.post(
        "/v1/models/titanic/explain", json={"instance": lady, "version": 9}
    )
    assert missing.status_code == 404
    wrong = sqlite_client.post(
        "/v1/models/titanic/explain", json={"instance": lady, "method": "lime"}
    )
    assert wrong.status_code == 422 and "method" in wrong.json()["error"]
    unknown = sqlite_client.post("/v1/models/ghost/explain", json={"instance": lady})
    assert unknown.status_code == 404


def test_a_forests_shapley_values_add_up_and_nothing_is_recorded(
    sqlite_client: TestClient,
) -> None:
    frame = load("electricity").iloc[:3000]
    forest = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0)
    forest.fit(frame[ELEC_FEATURES], frame["target"])
    artifacts = {"v1": skops.io.dumps(forest), "v2": skops.io.dumps(forest)}
    deploy_elec(sqlite_client, artifacts)
    rows = frame[ELEC_FEATURES].iloc[:200].to_dict(orient="records")
    assert (
        sqlite_client.post("/v1/models/elec/predict", json={"instances": rows}).status_code == 200
    )
    flush(sqlite_client)
    store = state_of(sqlite_client).store
    assert store.count_records("elec") == 200
    instance = rows[3]
    body = sqlite_client.post(
        "/v1/models/elec/explain", json={"instance": instance, "version": 2}
    ).json()
    assert body["version"] == 2 and body["method"] == "shapley"
    proba = forest.predict_proba(np.array([[instance[n] for n in ELEC_FEATURES]]))[0]
    assert body["value"] == pytest.approx(float(proba.max()))
    total = sum(r["contribution"] for r in body["contributions"])
    assert total == pytest.approx(body["value"] - body["reference_value"], abs=1e-9)
    flush(sqlite_client)
    assert store.count_records("elec") == 200  # the explanation's 64 mixes are not predictions
