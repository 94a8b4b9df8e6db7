"""The whole assistant flow through the HTTP API: from a CSV to a monitored model.

upload → clean → train (classification and regression) → deploy to staging → predict through
the staging gateway → promote → predict through the API's gateway → monitor → download.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlwarden.api import routes_assistant
from mlwarden.datasets import path_of
from mlwarden.domain import Role
from mlwarden.server import create_app
from mlwarden.settings import Settings


def _client(tmp_path: Path, **settings: Any) -> TestClient:
    config = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'api.sqlite'}",
        write_flush_interval_s=0.05,
        **settings,
    )
    app = create_app(config)
    app.include_router(routes_assistant.router)
    return TestClient(app)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path, auth=False) as test_client:
        yield test_client


def ask(client: TestClient, text: str, **flags: Any) -> dict[str, Any]:
    response = client.post("/v1/assistant", json={"text": text, **flags})
    assert response.status_code == 200, response.text
    return response.json()


def test_from_a_csv_to_a_monitored_model(client: TestClient) -> None:
    state = client.app.state.mlwarden  # type: ignore[attr-defined]
    store = state.store

    with open(path_of("titanic"), "rb") as handle:
        uploaded = client.post(
            "/v1/assistant/datasets",
            files={"file": ("titanic.csv", handle, "text/csv")},
            data={"name": "titanic"},
        )
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["result"]["dataset"]["rows"] == 891

    understood = ask(client, "cleen titanic", dry_run=True)
    assert understood == {
        "intent": "clean",
        "arguments": {"dataset": "titanic"},
        "command": "mlwarden datasets clean titanic",
        "missing": [],
    }

    cleaned = ask(client, "clean titanic keeping Survived")
    assert cleaned["status"] == "done"
    actions = {(s["action"], s["column"]) for s in cleaned["result"]["plan"]["steps"]}
    assert ("drop_column", "Cabin") in actions and ("impute", "Age") in actions
    assert cleaned["result"]["dataset"]["version"] == 2

    classifier = ask(
        client, "train a classifier on titanic to predict Survived with logistic regression"
    )
    assert classifier["status"] == "done", classifier["message"]
    assert classifier["result"]["metrics"]["accuracy"] > 0.7
    regressor = ask(client, "train a regression model on it predicting Fare using ridge")
    assert regressor["status"] == "done", regressor["message"]
    assert regressor["result"]["model"] == "titanic-fare"
    assert regressor["result"]["metrics"]["r2"] > 0.2

    staged = ask(client, "deploy titanic-survived to staging")
    assert staged["status"] == "done"
    assert staged["result"]["deployment"]["environment"] == "staging"

    # trained on the cleaned version, the model takes rows as they are in the uploaded file
    raw = pd.read_csv(path_of("titanic")).drop(columns=["Survived"]).iloc[:5]
    instances = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in raw.to_dict(orient="records")
    ]

    # staging is a real second target: the gateway serves it over HTTP, production does not yet
    staging = client.post(
        "/v1/models/titanic-survived/predict?environment=staging", json={"instances": instances}
    )
    assert staging.status_code == 200, staging.text
    answers = staging.json()["predictions"]
    assert [a["version"] for a in answers] == [1] * 5
    assert all(a["prediction"] in (0, 1) for a in answers)
    not_live = client.post("/v1/models/titanic-survived/predict", json={"instances": instances})
    assert not_live.status_code >= 400

    waiting = ask(client, "promote it to production")
    assert waiting["status"] == "needs_confirmation"
    assert store.get_deployment("titanic-survived", "production") is None
    promoted = ask(client, "promote it to production", confirm=True)
    assert promoted["status"] == "done"

    served = client.post("/v1/models/titanic-survived/predict", json={"instances": instances})
    assert served.status_code == 200, served.text
    predictions = served.json()["predictions"]
    assert [p["version"] for p in predictions] == [1] * 5
    assert [p["prediction"] for p in predictions] == [a["prediction"] for a in answers]

    store.set_monitoring("titanic-survived", False)
    monitored = ask(client, "monitor titanic-survived for drift")
    assert monitored["status"] == "done" and store.is_monitored("titanic-survived")

    download = client.get("/v1/assistant/datasets/titanic/download?version=2&format=parquet")
    assert download.status_code == 200
    assert pd.read_parquet(io.BytesIO(download.content)).shape == (891, 10)
    # a download command answers where to fetch the file; the server writes none
    ready = ask(client, "download the cleaned titanic")
    assert ready["status"] == "done" and ready["result"]["dataset"]["version"] == 2
    assert ready["result"]["url"] == "/v1/assistant/datasets/titanic/download?version=2&format=csv"
    fetched = client.get(ready["result"]["url"])
    assert fetched.status_code == 200
    assert pd.read_csv(io.BytesIO(fetched.content)).shape == (891, 10)

    runs = ask(client, "show experiments")["result"]["experiments"]
    assert [(r["id"], r["model"], r["dataset"]) for r in runs] == [
        (1, "titanic-survived", "titanic v2"),
        (2, "titanic-fare", "titanic v2"),
    ]
    models = ask(client, "list models")["result"]["models"]
    survived = next(m for m in models if m["model"] == "titanic-survived")
    assert (survived["staging"], survived["production"], survived["monitored"]) == (1, 1, True)


def test_a_lightgbm_model_trains_deploys_and_serves(client: TestClient) -> None:
    # LightGBM is the optional model family: its estimators must load through the registry's
    # skops loader (which refuses unknown types) for the gateway to serve them
    assert ask(client, "load the titanic example")["status"] == "done"
    trained = ask(client, "train a classifier on titanic to predict Survived with lightgbm")
    assert trained["status"] == "done", trained["message"]
    assert trained["result"]["algorithm"] == "lightgbm"
    assert trained["result"]["metrics"]["accuracy"] > 0.7
    assert ask(client, "deploy titanic-survived to staging")["status"] == "done"
    store = client.app.state.mlwarden.store  # type: ignore[attr-defined]
    features = store.get_model("titanic-survived").feature_names
    rows = pd.read_csv(path_of("titanic"))[features].iloc[:4]
    instances = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in rows.to_dict(orient="records")
    ]
    served = client.post(
        "/v1/models/titanic-survived/predict?environment=staging", json={"instances": instances}
    )
    assert served.status_code == 200, served.text
    answers = served.json()["predictions"]
    assert [a["version"] for a in answers] == [1] * 4
    assert all(a["prediction"] in (0, 1) and a["served_by"] == "live" for a in answers)


@pytest.mark.parametrize(
    ("text", "status", "fragment"),
    [
        ("upload /no/such/file.csv as x", 422, "the server reads and writes no files by path"),
        ("train a classifier on titanic predicting Lifespan", 422, "unknown column"),
        ("deploy nothing-here to staging", 404, "no model named"),
    ],
)
def test_bad_input_keeps_its_http_status(
    client: TestClient, text: str, status: int, fragment: str
) -> None:
    assert ask(client, "load the titanic example")["status"] == "done"
    response = client.post("/v1/assistant", json={"text": text})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and fragment in body["message"]
    assert body["understood"]["intent"] in {"upload", "train", "deploy"}


def test_a_bad_upload_and_a_missing_download_are_clear(client: TestClient) -> None:
    bad = client.post("/v1/assistant/datasets", files={"file": ("empty.csv", b"", "text/csv")})
    assert bad.status_code == 422 and "cannot read empty.csv" in bad.json()["message"]
    missing = client.get("/v1/assistant/datasets/ghost/download")
    assert missing.status_code == 404 and "no dataset named 'ghost'" in missing.json()["error"]


def test_running_needs_the_operator_role_but_a_dry_run_only_viewer(tmp_path: Path) -> None:
    with _client(tmp_path, auth=True) as client:
        store = client.app.state.mlwarden.store  # type: ignore[attr-defined]
        viewer = store.create_token("reader", Role.VIEWER)
        operator = store.create_token("op", Role.OPERATOR)
        body = {"text": "load the titanic example"}
        assert client.post("/v1/assistant", json=body).status_code == 401
        as_viewer = {"Authorization": f"Bearer {viewer}"}
        dry = client.post("/v1/assistant", json={**body, "dry_run": True}, headers=as_viewer)
        assert dry.status_code == 200 and dry.json()["intent"] == "upload"
        assert client.post("/v1/assistant", json=body, headers=as_viewer).status_code == 403
        done = client.post(
            "/v1/assistant", json=body, headers={"Authorization": f"Bearer {operator}"}
        )
        assert done.status_code == 200 and done.json()["status"] == "done"
