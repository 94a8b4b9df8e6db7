"""A deployment's input repair, through the real gateway: mended for the model, recorded as sent."""

from __future__ import annotations

import pytest
from api_helpers import deploy_elec, flush, state_of
from fastapi.testclient import TestClient


def test_the_gateway_answers_the_mended_request_and_records_it_as_sent(
    sqlite_client: TestClient, elec_artifacts: dict[str, bytes], elec_rows: list[dict[str, float]]
) -> None:
    client = sqlite_client
    deploy_elec(client, elec_artifacts)
    row = dict(elec_rows[0])
    clean = client.post("/v1/models/elec/predict", json={"instances": row}).json()
    broken_row = {**row, "nswdemand": row["nswdemand"] * 100, "nswprice": None}
    del broken_row["vicdemand"]
    broken_row["vic_demand"] = row["vicdemand"]
    refused = client.post("/v1/models/elec/predict", json={"instances": broken_row})
    assert refused.status_code == 422  # the renamed column: unknown and missing features

    repair = {
        "nswdemand": {"divide_by": 100, "low": 0, "high": 1},
        "nswprice": {"fill": row["nswprice"]},
        "vicdemand": {"renamed_from": "vic_demand"},
    }
    body = {"live_version": 1, "input_repair": repair, "reason": "mend the upstream break"}
    response = client.put("/v1/models/elec/deployment", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["input_repair"]["nswdemand"]["divide_by"] == 100
    state_of(client).gateway.invalidate("elec")
    mended = client.post("/v1/models/elec/predict", json={"instances": broken_row})
    assert mended.status_code == 200, mended.text
    assert mended.json()["probabilities"] == pytest.approx(clean["probabilities"])
    flush(client)
    stored = state_of(client).store.fetch_records("elec")
    record = next(r for r in stored if r["id"] == mended.json()["id"])
    assert record["features"] == broken_row  # the monitor sees the fault as it arrives

    revisions = len(state_of(client).store.deployment_history("elec"))
    bad = {"live_version": 1, "input_repair": {"nswprice": {"divide_by": 0, "low": 0, "high": 1}}}
    refused = client.put("/v1/models/elec/deployment", json=bad)
    assert refused.status_code == 422 and "divide_by" in refused.text
    # a repair of a feature the model does not have would make every request unknown-keyed
    for repair in (
        {"nsw_price": {"fill": 0.1}},
        {"nswprice": {"fill": 0.1, "fill_intercept": 0, "fill_coefficients": {"x": 1}}},
    ):
        body = {"live_version": 1, "input_repair": repair}
        refused = client.put("/v1/models/elec/deployment", json=body)
        assert refused.status_code == 422 and "not features" in refused.text, refused.text
    assert client.post("/v1/models/elec/predict", json={"instances": row}).status_code == 200
    # nothing was written by the refused changes
    assert len(state_of(client).store.deployment_history("elec")) == revisions
