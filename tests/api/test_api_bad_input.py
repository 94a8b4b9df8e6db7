"""Every bad input of the issue gets a clear 4xx, nothing half stored, and serving goes on.

A malformed body stores nothing; a well-formed request whose rows break the model's schema is
refused and each bad row kept as an error record (nothing served), so that the monitor sees a
schema break upstream (``test_api_refused.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from api_helpers import ELEC_FEATURES, ELEC_SPEC, deploy_elec, flush, make_settings, state_of
from fastapi.testclient import TestClient

from mlwarden.server import create_app


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, elec_artifacts: dict[str, bytes]
) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    """One server for every bad request of this module: it must keep serving after each."""
    tmp_path = tmp_path_factory.mktemp("bad-input")
    app = create_app(make_settings(tmp_path, max_request_bytes=64 * 1024))
    with TestClient(app) as client:
        deploy_elec(client, elec_artifacts)
        yield client, {n: 1.0 for n in ELEC_FEATURES}


def _still_serving(client: TestClient, row: dict[str, Any]) -> None:
    response = client.post("/v1/models/elec/predict", json={"instances": row})
    assert response.status_code == 200, response.text


def _records(client: TestClient) -> int:
    flush(client)
    return int(state_of(client).store.count_records("elec"))


def _stored_nothing(client: TestClient, before: int) -> None:
    assert _records(client) == before


def _kept_refused(client: TestClient, before: int, rows: int, words: str) -> None:
    """``rows`` refused rows were kept as error records with no prediction, naming ``words``."""
    assert _records(client) == before + rows
    kept = state_of(client).store.fetch_records("elec")[-rows:]
    assert all(r["prediction"] is None and r["version"] is None for r in kept)
    assert all(r["error"].startswith("rejected: invalid input: ") for r in kept)
    assert any(words in r["error"] for r in kept)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b'{"instances": {"period": 1.0,', 422, "malformed JSON"),
        (b'{"instances": {"period": NaN}}', 422, "NaN is not valid JSON"),
        (b'{"instances": {"period": Infinity}}', 422, "Infinity is not valid JSON"),
        (b"", 422, "body is empty"),
        (b"[1, 2]", 422, "must be a JSON object"),
        (b'{"rows": []}', 422, "unknown fields ['rows']"),
        (b'{"instances": 3}', 422, "'instances' must be an object or a list"),
        (b'{"instances": []}', 422, "no instances"),
        (b'{"instances": [3]}', 422, "expected an object of features"),
        (b"\xff\xfe{}", 422, "malformed JSON"),
    ],
)
def test_malformed_bodies(
    served: tuple[TestClient, dict[str, Any]], body: bytes, status: int, words: str
) -> None:
    client, row = served
    before = _records(client)
    response = client.post(
        "/v1/models/elec/predict", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    _stored_nothing(client, before)
    _still_serving(client, row)


@pytest.mark.parametrize(
    ("change", "field", "expected", "received"),
    [
        ({"nswprice": "cheap"}, "nswprice", "a number", "cheap"),
        ({"nswprice": True}, "nswprice", "a number", True),
        ({"nswprice": None}, "nswprice", "a value (not null)", None),
        ({"nswprice": "inf"}, "nswprice", "a finite number", "inf"),
        ({"nswprice": [1, 2]}, "nswprice", "a number", "[1, 2]"),
        ({"colour": "red"}, "colour", "no such feature", "red"),
    ],
)
def test_wrong_types_and_extra_features_name_the_field(
    served: tuple[TestClient, dict[str, Any]],
    change: dict[str, Any],
    field: str,
    expected: str,
    received: Any,
) -> None:
    client, row = served
    before = _records(client)
    response = client.post("/v1/models/elec/predict", json={"instances": {**row, **change}})
    assert response.status_code == 422
    error = response.json()["detail"]["errors"][0]
    assert error["field"] == field and error["row"] == 0
    assert error["expected"].startswith(expected)
    assert error["received"] == received
    assert field in response.json()["error"]
    _kept_refused(client, before, 1, field)
    _still_serving(client, row)


def test_missing_feature(served: tuple[TestClient, dict[str, Any]]) -> None:
    client, row = served
    before = _records(client)
    partial = {k: v for k, v in row.items() if k != "transfer"}
    response = client.post("/v1/models/elec/predict", json={"instances": partial})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid input: feature 'transfer' is missing"
    _kept_refused(client, before, 1, "feature 'transfer' is missing")


def test_batch_with_bad_rows_names_them_and_keeps_only_them(
    served: tuple[TestClient, dict[str, Any]],
) -> None:
    client, row = served
    before = _records(client)
    batch = [row, {**row, "period": "x"}, row, {**row, "vicprice": None}]
    response = client.post("/v1/models/elec/predict", json={"instances": batch})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["bad_rows"] == [1, 3]
    assert [(e["row"], e["field"]) for e in detail["errors"]] == [(1, "period"), (3, "vicprice")]
    _kept_refused(client, before, 2, "vicprice")
    kept = state_of(client).store.fetch_records("elec")[-2:]
    assert sorted(map(str, (r["features"] for r in kept))) == sorted(map(str, (batch[1], batch[3])))


def test_unknown_model_and_version(served: tuple[TestClient, dict[str, Any]]) -> None:
    client, row = served
    before = _records(client)
    response = client.post("/v1/models/nope/predict", json={"instances": row})
    assert response.status_code == 404
    assert "unknown model 'nope'" in response.json()["error"]
    assert "elec" in response.json()["error"]  # it lists the known ones
    response = client.patch("/v1/models/elec/deployment", json={"live_version": 9})
    assert response.status_code == 404 and "9" in response.json()["error"]
    assert client.get("/v1/models/elec/versions/7").status_code == 404
    assert client.get("/v1/models/elec/deployment").json()["live_version"] == 1
    _stored_nothing(client, before)
    _still_serving(client, row)


def test_payload_above_the_limit_is_413(served: tuple[TestClient, dict[str, Any]]) -> None:
    client, row = served
    before = _records(client)
    big = {"instances": [row] * 2000}
    response = client.post("/v1/models/elec/predict", json=big)
    assert response.status_code == 413
    assert "limit is 65536 bytes" in response.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        body = json.dumps(big).encode()
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = client.post(
        "/v1/models/elec/predict", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    _stored_nothing(client, before)
    _still_serving(client, row)


def test_invalid_model_files_are_refused_and_nothing_is_stored(
    served: tuple[TestClient, dict[str, Any]], elec_artifacts: dict[str, bytes]
) -> None:
    client, row = served
    before = _records(client)
    truncated = elec_artifacts["v1"][: len(elec_artifacts["v1"]) // 2]
    for content in (b"this is not a zip", b"", truncated):
        response = client.post("/v1/models/elec/versions", files={"file": ("model.skops", content)})
        assert response.status_code == 422, response.text
        assert response.json()["error"]
    versions = client.get("/v1/models/elec/versions").json()
    assert [v["number"] for v in versions] == [1, 2]
    response = client.post("/v1/models/elec/versions", files={"other": ("x", b"1")})
    assert response.status_code == 422 and "'file'" in response.json()["error"]
    response = client.post(
        "/v1/models/elec/versions",
        files={"file": ("m.skops", elec_artifacts["v1"])},
        data={"metrics": "{not json"},
    )
    assert response.status_code == 422 and "metrics" in response.json()["error"]
    assert len(client.get("/v1/models/elec/versions").json()) == 2
    _stored_nothing(client, before)
    _still_serving(client, row)


def test_bad_model_specs_and_duplicates(served: tuple[TestClient, dict[str, Any]]) -> None:
    client, row = served
    before = _records(client)
    response = client.post("/v1/models", json={"name": "x", "task": "magic", "features": []})
    assert response.status_code == 422
    assert "task" in response.json()["error"]
    twice = {**ELEC_SPEC, "name": "twice", "features": [{"name": "a"}, {"name": "a"}]}
    assert client.post("/v1/models", json=twice).status_code == 422
    assert client.post("/v1/models", json=ELEC_SPEC).status_code == 409
    assert [m["name"] for m in client.get("/v1/models").json()] == ["elec"]
    bad_remote = client.post(
        "/v1/models/elec/versions/remote", json={"url": "http://x", "protocol": "grpc"}
    )
    assert bad_remote.status_code == 422 and "protocol" in bad_remote.json()["error"]
    assert (
        client.post("/v1/models/elec/versions/remote", json={"url": "ftp://x"}).status_code == 422
    )
    assert client.put("/v1/models/elec/deployment", json={"canary_weight": 2}).status_code == 422
    assert client.put("/v1/models/elec/deployment", json={"lve_version": 1}).status_code == 422
    assert client.post("/v1/models/elec/deployment/undo", json={"revision": 42}).status_code == 404
    assert client.get("/no/such/path").status_code == 404
    _stored_nothing(client, before)
    _still_serving(client, row)
