"""While tokens are required, /metrics and the API description need one too, unless opened.

And the description is the real API: request bodies and the bearer-token security scheme.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import make_settings
from fastapi.testclient import TestClient

from mlwarden.server import create_app
from mlwarden.store import Store

CLOSABLE = ("/metrics", "/openapi.json", "/docs", "/redoc")


def _app_with_viewer(
    tmp_path: Path, database_url: str | None = None, **settings: Any
) -> tuple[Any, dict[str, str]]:
    config = make_settings(tmp_path, database_url, **settings)
    with Store(config.resolved_database_url) as store:
        token = store.create_token("watcher", "viewer")
    return create_app(config), {"Authorization": f"Bearer {token}"}


@pytest.fixture
def closed(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    app, viewer = _app_with_viewer(tmp_path, database_url, auth=True)
    with TestClient(app) as client:
        yield client, viewer


def test_metrics_and_docs_need_a_viewer_token_by_default(
    closed: tuple[TestClient, dict[str, str]],
) -> None:
    client, viewer = closed
    for url in CLOSABLE:
        anonymous = client.get(url)
        assert anonymous.status_code == 401, url
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"
        assert "authentication required" in anonymous.json()["error"]
        assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(url, headers=viewer).status_code == 200, url
    assert "mlwarden_predictions_total" in client.get("/metrics", headers=viewer).text
    assert "/openapi.json" in client.get("/docs", headers=viewer).text
    assert client.get("/health").status_code == 200  # liveness stays open for load balancers


def test_each_can_be_opened_by_its_setting(tmp_path: Path) -> None:
    app, _ = _app_with_viewer(tmp_path, auth=True, metrics_public=True)
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/openapi.json").status_code == 401
    app, _ = _app_with_viewer(tmp_path / "docs", auth=True, docs_public=True)
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401
        for url in ("/openapi.json", "/docs", "/redoc"):
            assert client.get(url).status_code == 200, url


def test_the_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlwarden.settings import Settings

    assert Settings().metrics_public is False and Settings().docs_public is False
    monkeypatch.setenv("MLWARDEN_METRICS_PUBLIC", "true")
    monkeypatch.setenv("MLWARDEN_DOCS_PUBLIC", "1")
    assert Settings().metrics_public is True and Settings().docs_public is True


def test_without_auth_on_loopback_everything_stays_open(tmp_path: Path) -> None:
    app, _ = _app_with_viewer(tmp_path)  # loopback, auth unset: the local admin
    with TestClient(app) as client:
        for url in CLOSABLE:
            assert client.get(url).status_code == 200, url


def test_the_document_describes_bodies_and_the_bearer_scheme(
    closed: tuple[TestClient, dict[str, str]],
) -> None:
    client, viewer = closed
    document = client.get("/openapi.json", headers=viewer).json()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert document["security"] == [{"bearerAuth": []}]
    assert document["paths"]["/health"]["get"]["security"] == []
    bodiless = {  # only a path id (and a query flag)
        ("post", "/v1/actions/{action_id}/undo"),
        ("post", "/v1/incidents/{incident_id}/acknowledge"),
        ("post", "/v1/investigations/{investigation_id}/stop"),
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method in {"post", "put", "patch"} and (method, path) not in bodiless:
                assert "requestBody" in operation, (method, path)
            error = operation["responses"]["4XX"]["content"]["application/json"]["schema"]
            ref = {"$ref": "#/components/schemas/Error"}
            # the assistant's refusals may also be its reply (what it understood, and why not)
            assert error == ref or (path.startswith("/v1/assistant") and ref in error["anyOf"])
    schemas = document["components"]["schemas"]
    spec = document["paths"]["/v1/models"]["post"]["requestBody"]["content"]["application/json"]
    assert spec["schema"] == {"$ref": "#/components/schemas/ModelSpec"}
    assert schemas["ModelSpec"]["required"] == ["name", "task", "features"]
    assert schemas["FeatureSpec"]["properties"]["type"] == {
        "$ref": "#/components/schemas/FeatureType",
        "default": "numeric",
    }
    change = schemas["DeploymentChange"]
    assert change["additionalProperties"] is False and "reason" in change["properties"]
    upload = document["paths"]["/v1/models/{name}/versions"]["post"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data", "application/octet-stream"}
    version = document["paths"]["/v1/models/{name}/versions/{number}"]["get"]["parameters"]
    number = next(p for p in version if p["name"] == "number")["schema"]
    assert number["maximum"] == 2**31 - 1
