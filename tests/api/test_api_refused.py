"""A schema break upstream, seen through the gateway: the refused rows are kept as error
records, so the monitor's window shows the refusals and the broken field, where a 422 alone
left no trace in the store."""

from __future__ import annotations

from typing import Any

import pandas as pd
from api_helpers import ELEC_FEATURES, ELEC_SPEC, flush, state_of
from fastapi.testclient import TestClient

from mlwarden.domain import ModelSpec
from mlwarden.monitor.engine import Monitor
from mlwarden.monitor.window import records_frame


def test_a_renamed_field_refused_by_the_gateway_is_an_error_and_a_quality_break_of_the_window(
    elec_client: TestClient, elec_frame: pd.DataFrame
) -> None:
    client = elec_client
    window = elec_frame[ELEC_FEATURES].iloc[3000:3300].to_dict(orient="records")
    # the upstream service renamed nswprice in two rows of every five
    sent: list[dict[str, Any]] = [
        {("price" if k == "nswprice" else k): v for k, v in row.items()} if i % 5 < 2 else row
        for i, row in enumerate(window)
    ]
    served = 0
    for start in range(0, len(sent), 50):
        batch = sent[start : start + 50]
        response = client.post("/v1/models/elec/predict", json={"instances": batch})
        assert response.status_code == 422
        bad = set(response.json()["detail"]["bad_rows"])
        assert bad == {i for i in range(len(batch)) if (start + i) % 5 < 2}
        # the client drops the rows the gateway named and sends the rest again
        good = [row for i, row in enumerate(batch) if i not in bad]
        response = client.post("/v1/models/elec/predict", json={"instances": good})
        assert response.status_code == 200, response.text
        served += len(response.json()["predictions"])
    flush(client)
    records = state_of(client).store.fetch_records("elec")
    assert len(records) == len(sent) and served == 180
    refused = [r for r in records if r["error"]]
    assert len(refused) == 120 and all(r["prediction"] is None for r in refused)
    assert "feature 'nswprice' is missing" in refused[0]["error"]

    reference = elec_frame.iloc[:2500]
    monitor = Monitor(reference[[*ELEC_FEATURES, "target"]], ModelSpec.model_validate(ELEC_SPEC))
    result = monitor.process(records_frame(records), index=0)
    assert result.signals["error_rate"] == 0.4
    kinds = {(f.kind.value, tuple(f.features)) for f in result.findings}
    assert any(kind == "data_quality" and "nswprice" in features for kind, features in kinds), kinds


def test_a_refused_row_is_kept_bounded(elec_client: TestClient) -> None:
    row: dict[str, Any] = {n: 1.0 for n in ELEC_FEATURES}
    huge = {**row, "nswprice": "x" * 100_000, **{f"extra{i}": i for i in range(1000)}}
    response = elec_client.post("/v1/models/elec/predict", json={"instances": [huge]})
    assert response.status_code == 422
    flush(elec_client)
    (kept,) = state_of(elec_client).store.fetch_records("elec")
    assert kept["prediction"] is None and kept["error"].startswith("rejected: invalid input: ")
    assert len(kept["features"]) == 256  # the keys kept of 1,006
    assert kept["features"]["period"] == 1.0
    assert len(kept["features"]["nswprice"]) < 1_000
