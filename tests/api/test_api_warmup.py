"""Warm-up: the versions a deployment routes to are loaded before the first request needs them
(loading a pipeline's artifact takes seconds, which the first caller used to wait for)."""

from __future__ import annotations

from pathlib import Path

from api_helpers import ELEC_FEATURES, deploy_elec, make_settings, state_of, wait_for
from fastapi.testclient import TestClient

from mlwarden.server import create_app

ROW = {n: 1.0 for n in ELEC_FEATURES}


def test_a_fresh_server_loads_deployed_versions_before_any_request(
    tmp_path: Path, elec_artifacts: dict[str, bytes]
) -> None:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as first:
        deploy_elec(first, elec_artifacts, fallback_version=2)
    with TestClient(create_app(settings)) as fresh:
        gateway = state_of(fresh).gateway
        assert wait_for(lambda: gateway.loaded_versions("elec") == [1, 2], timeout_s=120)
        answer = fresh.post("/v1/models/elec/predict", json={"instances": ROW})
        assert answer.status_code == 200 and answer.json()["version"] == 1


def test_a_new_deployment_is_loaded_when_it_is_made(
    elec_client: TestClient, elec_artifacts: dict[str, bytes]
) -> None:
    gateway = state_of(elec_client).gateway
    assert wait_for(lambda: gateway.loaded_versions("elec") == [1], timeout_s=120)
    changed = elec_client.put("/v1/models/elec/deployment", json={"live_version": 2})
    assert changed.status_code == 200
    # no request has asked for version 2 yet
    assert wait_for(lambda: gateway.loaded_versions("elec") == [2], timeout_s=120)
