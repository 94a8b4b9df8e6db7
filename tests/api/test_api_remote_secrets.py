"""A remote endpoint's credentials are write-only: stored and sent, shown as ``***``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import RemoteModel, flush, make_settings, role_headers, state_of
from fastapi.testclient import TestClient

from mlwarden.server import create_app

SPEC = {
    "name": "scored",
    "task": "classification",
    "features": [{"name": "x", "type": "numeric"}],
}
SECRETS = ("Bearer s3cret-token", "k3y-value", "q-s3cret", "pa55word")


@pytest.fixture
def secured(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, dict[str, dict]]]:
    settings = make_settings(tmp_path, database_url, auth=True)
    headers = role_headers(settings)
    with TestClient(create_app(settings)) as client:
        yield client, headers


def test_remote_credentials_are_masked_for_every_role_and_still_sent(
    secured: tuple[TestClient, dict[str, dict]], remote: RemoteModel, tmp_path: Path
) -> None:
    client, headers = secured
    assert client.post("/v1/models", json=SPEC, headers=headers["admin"]).status_code == 201
    body = {
        "url": f"{remote.url}/ok?api_key=q-s3cret&n=1",
        "headers": {
            "Authorization": "Bearer s3cret-token",
            "X-Api-Key": "k3y-value",
            "X-Tenant": "acme",
        },
    }
    added = client.post("/v1/models/scored/versions/remote", json=body, headers=headers["operator"])
    assert added.status_code == 201, added.text
    shown = added.json()["endpoint"]
    assert shown["headers"] == {"Authorization": "***", "X-Api-Key": "***", "X-Tenant": "acme"}
    assert shown["url"] == f"{remote.url}/ok?api_key=***&n=1"
    basic = {"url": remote.url.replace("http://", "http://bob:pa55word@")}
    added = client.post("/v1/models/scored/versions/remote", json=basic, headers=headers["admin"])
    assert added.status_code == 201 and "bob:***@" in added.json()["endpoint"]["url"]

    for role in ("viewer", "operator", "admin"):
        for path in (
            "/v1/models",
            "/v1/models/scored",
            "/v1/models/scored/versions",
            "/v1/models/scored/versions/1",
        ):
            response = client.get(path, headers=headers[role])
            assert response.status_code == 200, (role, path, response.text)
            assert "***" in response.text or path == "/v1/models", (role, path)
            for secret in SECRETS:
                assert secret not in response.text, (role, path, secret)
        detail = client.get("/v1/models/scored", headers=headers[role]).json()
        assert detail["versions"][0]["endpoint"]["headers"]["Authorization"] == "***"

    # stored unchanged and used: the endpoint receives the real credentials
    deploy = {"live_version": 1, "reason": "go"}
    put = client.put("/v1/models/scored/deployment", json=deploy, headers=headers["operator"])
    assert put.status_code == 200, put.text
    predicted = client.post(
        "/v1/models/scored/predict", json={"instances": [{"x": 1.0}]}, headers=headers["operator"]
    )
    assert predicted.status_code == 200, predicted.text
    sent = remote.headers[-1]
    assert sent["Authorization"] == "Bearer s3cret-token" and sent["X-Api-Key"] == "k3y-value"
    assert remote.requests[-1][0] == "/ok?api_key=q-s3cret&n=1"

    # a failing endpoint's error, answered to the caller and stored in the record
    failing = {"url": f"{remote.url}/fail?api_key=q-s3cret", "headers": body["headers"]}
    third = client.post("/v1/models/scored/versions/remote", json=failing, headers=headers["admin"])
    assert third.status_code == 201, third.text
    deploy = {"live_version": third.json()["number"], "reason": "failing"}
    put = client.put("/v1/models/scored/deployment", json=deploy, headers=headers["operator"])
    assert put.status_code == 200, put.text
    failed = client.post(
        "/v1/models/scored/predict", json={"instances": [{"x": 2.0}]}, headers=headers["operator"]
    )
    assert "api_key=***" in failed.text and "q-s3cret" not in failed.text, failed.text
    flush(client)
    store = state_of(client).store
    errors = [r["error"] for r in store.fetch_records("scored") if r.get("error")]
    assert errors and all("q-s3cret" not in e and "api_key=***" in e for e in errors)
    assert store.get_version("scored", 1).endpoint["headers"]["Authorization"] == (
        "Bearer s3cret-token"
    )
    trail = str(store.audit_entries()) + str(store.events("scored"))
    assert not any(secret in trail for secret in SECRETS)

    # the dashboard's model page (no auth: the local admin)
    local = make_settings(tmp_path / "local", store.engine.url.render_as_string(False), auth=False)
    with TestClient(create_app(local)) as dashboard:
        page = dashboard.get("/ui/models/scored")
        assert page.status_code == 200
        assert not any(secret in page.text for secret in SECRETS)
