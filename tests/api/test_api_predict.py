"""Serving real scikit-learn models through the gateway, and the records it leaves behind."""

from __future__ import annotations

from typing import Any

import pytest
import skops.io
from api_helpers import ELEC_FEATURES, deploy_elec, flush, state_of
from fastapi.testclient import TestClient


def test_predict_one_and_batch_match_the_model_and_are_recorded(
    client: TestClient, elec_artifacts: dict[str, bytes], elec_rows: list[dict[str, float]]
) -> None:
    deploy_elec(client, elec_artifacts)
    model = skops.io.loads(
        elec_artifacts["v1"], trusted=skops.io.get_untrusted_types(data=elec_artifacts["v1"])
    )
    response = client.post("/v1/models/elec/predict", json={"instances": elec_rows[0]})
    assert response.status_code == 200, response.text
    one = response.json()
    import pandas as pd

    expected = model.predict_proba(pd.DataFrame(elec_rows[:10], columns=ELEC_FEATURES))
    assert one["version"] == 1 and one["served_by"] == "live"
    assert one["probabilities"]["1"] == pytest.approx(expected[0][1])
    assert one["prediction"] == int(expected[0].argmax())

    batch = client.post("/v1/models/elec/predict", json={"instances": elec_rows[:10]}).json()
    answers = batch["predictions"]
    assert len(answers) == 10
    for answer, proba in zip(answers, expected, strict=True):
        assert answer["probabilities"]["0"] == pytest.approx(proba[0])

    flush(client)
    store = state_of(client).store
    records = {r["id"]: r for r in store.fetch_records("elec")}
    assert len(records) == 11
    stored = records[one["id"]]
    assert stored["features"] == elec_rows[0]
    assert stored["version"] == 1 and stored["served_by"] == "live"
    assert stored["prediction"] == one["prediction"]
    assert stored["scores"]["1"] == pytest.approx(one["probabilities"]["1"])
    assert stored["latency_ms"] > 0 and stored["error"] is None
    assert stored["timestamp"].tzinfo is not None


def test_pipeline_with_categorical_features_and_missing_values(
    sqlite_client: TestClient, titanic_model: tuple[dict[str, Any], bytes, list[dict[str, Any]]]
) -> None:
    spec, artifact, rows = titanic_model
    client = sqlite_client
    assert client.post("/v1/models", json=spec).status_code == 201
    up = client.post(
        "/v1/models/titanic/versions",
        content=artifact,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert up.status_code == 201, up.text
    client.patch("/v1/models/titanic/deployment", json={"live_version": 1})
    model = skops.io.loads(artifact, trusted=skops.io.get_untrusted_types(data=artifact))
    import pandas as pd

    frame = pd.DataFrame(rows)
    expected = model.predict_proba(frame)
    assert any(row["Age"] is None for row in rows)  # the imputer path is exercised
    answers = client.post("/v1/models/titanic/predict", json={"instances": rows}).json()
    got = [a["probabilities"]["1"] for a in answers["predictions"]]
    assert got == pytest.approx(expected[:, 1].tolist())


def test_regressor_answers_a_score(
    sqlite_client: TestClient, bike_regressor: tuple[dict[str, Any], bytes]
) -> None:
    spec, artifact = bike_regressor
    client = sqlite_client
    client.post("/v1/models", json=spec)
    client.post("/v1/models/bikes/versions", files={"file": ("m.skops", artifact)})
    client.put("/v1/models/bikes/deployment", json={"live_version": 1})
    answer = client.post(
        "/v1/models/bikes/predict", json={"instances": {"temp": 0.5, "hum": 0.4, "windspeed": 0.1}}
    ).json()
    assert isinstance(answer["score"], float)
    assert answer["prediction"] == pytest.approx(answer["score"])
    assert "probabilities" not in answer


def test_every_record_is_flushed_on_shutdown(
    tmp_path: Any, elec_artifacts: dict[str, bytes], elec_rows: list[dict[str, float]]
) -> None:
    from api_helpers import make_settings

    from mlwarden.server import create_app
    from mlwarden.store import Store

    settings = make_settings(tmp_path, write_flush_interval_s=60.0, write_batch_size=100_000)
    with TestClient(create_app(settings)) as client:
        deploy_elec(client, elec_artifacts)
        for row in elec_rows:
            response = client.post("/v1/models/elec/predict", json={"instances": row})
            assert response.status_code == 200
    with Store(settings.resolved_database_url) as store:
        assert store.count_records("elec") == len(elec_rows)
