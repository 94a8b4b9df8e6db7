"""Deleting models and versions: admin only, audited, refused while served, nothing dangling."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import ELEC_FEATURES, ELEC_SPEC, flush, make_settings, role_headers, state_of
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from mlwarden.cli.main import app as cli
from mlwarden.clock import utcnow
from mlwarden.server import create_app
from mlwarden.store import tables as t
from mlwarden.store.agent_tables import incidents, signals

ROW = {n: 1.0 for n in ELEC_FEATURES}
Headers = dict[str, dict[str, str]]


@pytest.fixture
def secured(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, Headers]]:
    settings = make_settings(tmp_path, database_url, auth=True)
    headers = role_headers(settings)
    with TestClient(create_app(settings)) as client:
        yield client, headers


def _store_bad_spec(client: TestClient, name: str, spec: dict[str, Any]) -> None:
    """A model row whose stored spec no longer validates (as a 500 on register left it)."""
    store = state_of(client).store
    with store.engine.begin() as conn:
        conn.execute(
            insert(t.models).values(
                name=name, task="classification", spec=spec, monitoring=True, created_at=utcnow()
            )
        )


def test_a_model_with_a_bad_spec_is_deleted_by_an_admin_and_the_list_works_again(
    secured: tuple[TestClient, Headers], database_url: str
) -> None:
    client, headers = secured
    assert client.post("/v1/models", json=ELEC_SPEC, headers=headers["admin"]).status_code == 201
    broken = {"name": "broken", "task": "classification", "features": [{"name": "x", "type": 7}]}
    _store_bad_spec(client, "broken", broken)
    if database_url.startswith("sqlite"):  # PostgreSQL's JSON has no Infinity to store
        infinite = {**ELEC_SPEC, "name": "infinite"}
        infinite["features"] = [{"name": "x", "type": "numeric", "minimum": float("inf")}]
        _store_bad_spec(client, "infinite", infinite)

    for name in ("broken", "infinite") if database_url.startswith("sqlite") else ("broken",):
        assert client.delete(f"/v1/models/{name}", headers=headers["viewer"]).status_code == 403
        denied = client.delete(f"/v1/models/{name}", headers=headers["operator"])
        assert denied.status_code == 403 and "admin" in denied.json()["error"]
        done = client.delete(f"/v1/models/{name}", headers=headers["admin"])
        assert done.status_code == 200, done.text
        assert done.json() == {"deleted": name, "versions": 0, "records": 0}

    listed = client.get("/v1/models", headers=headers["viewer"])
    assert listed.status_code == 200, listed.text
    assert [m["name"] for m in listed.json()] == ["elec"]
    audit = state_of(client).store.audit_entries(action="model.delete")
    assert {a["target"] for a in audit} >= {"broken"}
    assert audit[0]["actor"].startswith("bootstrap-admin")  # the admin token's name
    missing = client.delete("/v1/models/broken", headers=headers["admin"])
    assert missing.status_code == 404


def _upload(client: TestClient, headers: Headers, artifact: bytes) -> int:
    response = client.post(
        "/v1/models/elec/versions",
        files={"file": ("m.skops", artifact)},
        headers=headers["operator"],
    )
    assert response.status_code == 201, response.text
    number: int = response.json()["number"]
    return number


def _deploy(client: TestClient, headers: Headers, **state: Any) -> None:
    body = {"reason": "test", **state}
    response = client.put("/v1/models/elec/deployment", json=body, headers=headers["operator"])
    assert response.status_code == 200, response.text


def test_versions_and_models_are_refused_while_served_then_deleted_with_all_they_stored(
    secured: tuple[TestClient, Headers], elec_artifacts: dict[str, bytes]
) -> None:
    client, headers = secured
    admin = headers["admin"]
    assert client.post("/v1/models", json=ELEC_SPEC, headers=admin).status_code == 201
    assert [_upload(client, headers, elec_artifacts[k]) for k in ("v1", "v2", "v1")] == [1, 2, 3]
    store = state_of(client).store
    model_id = store.model_id("elec")

    for role, state in (
        ("live", {"live_version": 2}),
        ("canary", {"live_version": 1, "canary_version": 2, "canary_weight": 0.1}),
        ("shadow", {"live_version": 1, "shadow_version": 2}),
        ("fallback", {"live_version": 1, "fallback_version": 2}),
    ):
        _deploy(client, headers, **state)
        refused = client.delete("/v1/models/elec/versions/2", headers=admin)
        assert refused.status_code == 409, (role, refused.text)
        assert f"{role} in production" in refused.json()["error"]
    assert (
        client.delete("/v1/models/elec/versions/2", headers=headers["operator"]).status_code == 403
    )

    # served records and an agent's trail exist before the model goes
    predicted = client.post(
        "/v1/models/elec/predict", json={"instances": [ROW] * 3}, headers=headers["operator"]
    )
    assert predicted.status_code == 200, predicted.text
    flush(client)
    with store.engine.begin() as conn:
        conn.execute(
            insert(signals).values(model_id=model_id, window=1, ts=utcnow(), name="psi", value=0.1)
        )
        conn.execute(
            insert(incidents).values(
                model_id=model_id, state="open", first_window=1, last_window=1,
                opened_at=utcnow(), updated_at=utcnow(),
            )
        )  # fmt: skip

    _deploy(client, headers, live_version=1)  # v2 is no longer served
    deleted = client.delete("/v1/models/elec/versions/2", headers=admin)
    assert deleted.status_code == 200, deleted.text
    assert [v["number"] for v in client.get("/v1/models/elec/versions", headers=admin).json()] == [
        1,
        3,
    ]
    assert client.get("/v1/models/elec/versions/2", headers=admin).status_code == 404
    redeploy = client.put(
        "/v1/models/elec/deployment", json={"live_version": 2}, headers=headers["operator"]
    )
    assert redeploy.status_code == 404 and "does not exist" in redeploy.json()["error"]
    # deleting the newest version does not free its number
    assert client.delete("/v1/models/elec/versions/3", headers=admin).status_code == 200
    assert _upload(client, headers, elec_artifacts["v2"]) == 4
    assert store.audit_entries(action="version.delete")[0]["target"] == "elec/3"

    refused = client.delete("/v1/models/elec", headers=admin)
    assert refused.status_code == 409 and "undeploy it first" in refused.json()["error"]
    assert "v1 live in production" in refused.json()["error"]
    _deploy(client, headers, live_version=None)
    gone = client.delete("/v1/models/elec", headers=admin)
    assert gone.status_code == 200, gone.text
    assert gone.json() == {"deleted": "elec", "versions": 2, "records": 3}
    assert client.get("/v1/models/elec", headers=admin).status_code == 404
    assert client.get("/v1/models", headers=admin).json() == []
    with store.engine.connect() as conn:
        for table in (t.versions, t.deployment_revisions, t.records, t.events, signals, incidents):
            left = conn.execute(select(func.count()).where(table.c.model_id == model_id))
            assert left.scalar_one() == 0, table.name
    assert store.audit_entries(action="model.delete")[0]["details"] == {
        "versions": 2,
        "records": 3,
    }

    # the name can be used again, from version 1, and serves the new model
    assert client.post("/v1/models", json=ELEC_SPEC, headers=admin).status_code == 201
    assert _upload(client, headers, elec_artifacts["v2"]) == 1
    _deploy(client, headers, live_version=1)
    again = client.post(
        "/v1/models/elec/predict", json={"instances": ROW}, headers=headers["operator"]
    )
    assert again.status_code == 200 and again.json()["version"] == 1


def test_cli_deletes_a_version_and_a_model_and_refuses_what_is_served(
    tmp_path: Path, database_url: str, elec_artifacts: dict[str, bytes]
) -> None:
    settings = make_settings(tmp_path, database_url)
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/models", json=ELEC_SPEC).status_code == 201
        for key in ("v1", "v2"):
            response = client.post(
                "/v1/models/elec/versions", files={"file": ("m.skops", elec_artifacts[key])}
            )
            assert response.status_code == 201
        assert client.put("/v1/models/elec/deployment", json={"live_version": 1}).status_code == 200
    url = settings.resolved_database_url
    runner = CliRunner()
    served = runner.invoke(
        cli, ["delete-model", "elec", "--version", "1", "--yes", "--database-url", url]
    )
    assert served.exit_code == 1 and "is served (live in production)" in served.output
    done = runner.invoke(
        cli, ["delete-model", "elec", "--version", "2", "--yes", "--json", "--database-url", url]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"deleted": "elec", "version": 2}
    asked = runner.invoke(cli, ["delete-model", "elec", "--database-url", url], input="n\n")
    assert asked.exit_code == 1 and "Aborted" in asked.output
    model = runner.invoke(cli, ["delete-model", "elec", "--yes", "--database-url", url])
    assert model.exit_code == 1 and "undeploy it first" in model.output
