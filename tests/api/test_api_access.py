"""Tokens and roles: viewer < operator < admin, 401 vs 403, audited actors, local mode."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api_helpers import ELEC_FEATURES, ELEC_SPEC, make_settings, state_of
from fastapi.testclient import TestClient

from mlwarden.server import create_app
from mlwarden.store import Store


@pytest.fixture
def secured(
    tmp_path: Any, database_url: str, elec_artifacts: dict[str, bytes]
) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    settings = make_settings(tmp_path, database_url, auth=True)
    with Store(settings.resolved_database_url) as store:
        tokens = {
            role: store.create_token(f"{role}-token", role) for role in ("viewer", "operator")
        }
    settings.bootstrap_admin_token = "mlw_bootstrap-admin-secret"
    tokens["admin"] = settings.bootstrap_admin_token
    headers = {role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()}
    with TestClient(create_app(settings)) as client:
        admin = headers["admin"]
        assert client.post("/v1/models", json=ELEC_SPEC, headers=admin).status_code == 201
        up = client.post(
            "/v1/models/elec/versions",
            files={"file": ("m.skops", elec_artifacts["v1"])},
            headers=headers["operator"],
        )
        assert up.status_code == 201, up.text
        yield client, headers


ROW = {n: 1.0 for n in ELEC_FEATURES}


def test_roles(secured: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, headers = secured
    viewer, operator, admin = headers["viewer"], headers["operator"], headers["admin"]

    # viewer: reads only
    assert client.get("/v1/models", headers=viewer).status_code == 200
    assert client.get("/v1/models/elec/deployment", headers=viewer).status_code == 200
    denied = client.put("/v1/models/elec/deployment", json={"live_version": 1}, headers=viewer)
    assert denied.status_code == 403
    assert "operator role" in denied.json()["error"] and "viewer" in denied.json()["error"]
    deploy = client.put(
        "/v1/models/elec/deployment", json={"live_version": 1, "reason": "go"}, headers=operator
    )
    assert deploy.status_code == 200 and deploy.json()["actor"] == "operator-token"
    assert (
        client.post("/v1/models/elec/predict", json={"instances": ROW}, headers=viewer).status_code
        == 403
    )
    assert (
        client.post(
            "/v1/models/elec/predict", json={"instances": ROW}, headers=operator
        ).status_code
        == 200
    )

    # operator: cannot register models or manage tokens
    other = {**ELEC_SPEC, "name": "other"}
    assert client.post("/v1/models", json=other, headers=operator).status_code == 403
    assert client.post("/v1/tokens", json={"name": "x"}, headers=operator).status_code == 403
    assert client.post("/v1/models", json=other, headers=admin).status_code == 201

    audit = state_of(client).store.audit_entries(action="deployment.deploy")
    assert audit[0]["actor"] == "operator-token"


def test_missing_bad_and_revoked_tokens(
    secured: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    client, headers = secured
    response = client.get("/v1/models")
    assert response.status_code == 401 and "Bearer" in response.json()["error"]
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Basic abc"}).status_code == 401

    created = client.post(
        "/v1/tokens", json={"name": "ci", "role": "operator"}, headers=headers["admin"]
    )
    assert created.status_code == 201
    ci = {"Authorization": f"Bearer {created.json()['token']}"}
    assert client.get("/v1/models", headers=ci).status_code == 200
    listed = client.get("/v1/tokens", headers=headers["admin"]).json()
    assert "ci" in [t["name"] for t in listed] and all("token" not in t for t in listed)
    assert client.delete("/v1/tokens/ci", headers=headers["admin"]).status_code == 200
    assert client.get("/v1/models", headers=ci).status_code == 401


def test_health_is_open_and_says_whether_auth_is_on(
    secured: tuple[TestClient, dict[str, dict[str, str]]], sqlite_client: TestClient
) -> None:
    client, _ = secured
    assert client.get("/health").json()["auth"] == "required"
    local = sqlite_client.get("/health").json()
    assert local["auth"] == "disabled (loopback only)" and local["status"] == "ok"


def test_auth_cannot_be_disabled_off_loopback(tmp_path: Any) -> None:
    settings = make_settings(tmp_path, host="0.0.0.0", auth=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/models").status_code == 401
