"""Numbers and documents no column, response or detector can hold are a clear 422 on entry.

Each case starts from the attack of issue 13: ``"minimum": 1e999`` in a model spec used to be
stored and then broke ``GET /v1/models`` for everyone; ids above 2^63, a 401-digit integer
feature and deeply nested JSON answered 500.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from api_helpers import ELEC_FEATURES, deploy_elec, flush, make_settings, state_of
from fastapi.testclient import TestClient
from pydantic import ValidationError

from mlwarden.capture.validation import MAX_JSON_DEPTH, parse_json
from mlwarden.domain import MAX_ID, FeatureSpec, ModelSpec
from mlwarden.errors import InvalidInput
from mlwarden.server import create_app

ROW = {n: 1.0 for n in ELEC_FEATURES}
TOO_BIG = "9223372036854775808"  # 2^63: one above the largest 64-bit id


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, elec_artifacts: dict[str, bytes]
) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path_factory.mktemp("unrepresentable")))
    with TestClient(app) as client:
        deploy_elec(client, elec_artifacts)
        yield client


def _send(client: TestClient, method: str, url: str, body: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    return client.request(method, url, content=body, headers=headers)


def _snapshot(client: TestClient) -> tuple[Any, ...]:
    """Everything a refused request could have half stored."""
    flush(client)
    store = state_of(client).store
    return (
        client.get("/v1/models").json(),
        client.get("/v1/models/elec/deployment/history").json(),
        client.get("/v1/models/elec/versions").json(),
        store.count_records("elec"),
    )


def test_a_feature_bound_of_1e999_is_refused_and_the_model_list_still_answers(
    served: TestClient,
) -> None:
    before = _snapshot(served)
    spec = '{"name": "x", "task": "regression", "features": [{"name": "a", "minimum": 1e999}]}'
    response = _send(served, "POST", "/v1/models", spec)
    assert response.status_code == 422, response.text
    assert "1e999" in response.json()["error"] and "finite" in response.json()["error"]
    listed = served.get("/v1/models")
    assert listed.status_code == 200
    assert [m["name"] for m in listed.json()] == ["elec"]
    assert _snapshot(served) == before


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("PUT", "/v1/models/elec/deployment", '{"live_version": 1, "canary_weight": 1e999}'),
        ("PUT", "/v1/models/elec/deployment", '{"live_version": 1, "default_response": -1e999}'),
        ("PATCH", "/v1/models/elec/deployment", '{"default_response": {"p": 1E+400}}'),
        ("POST", "/v1/models/elec/probe", '{"rate_per_s": 1e999}'),
        ("POST", "/v1/models/elec/versions/remote", '{"url": "http://x", "timeout_ms": 1e999}'),
        ("POST", "/v1/models/elec/versions/remote", '{"url": "http://x", "metrics": {"a": 1e999}}'),
        ("POST", "/v1/models/elec/feedback", '{"id": "r1", "label": 1e999}'),
        ("POST", "/v1/models/elec/predict", '{"instances": {"period": 1e999}}'),
    ],
)
def test_non_finite_numbers_in_bodies_are_422_and_store_nothing(
    served: TestClient, method: str, url: str, body: str
) -> None:
    before = _snapshot(served)
    response = _send(served, method, url, body)
    assert response.status_code == 422, response.text
    assert "not a finite float" in response.json()["error"]
    assert _snapshot(served) == before
    assert served.post("/v1/models/elec/predict", json={"instances": ROW}).status_code == 200


def test_a_401_digit_integer_feature_is_422(served: TestClient) -> None:
    before = _snapshot(served)
    huge = "1" + "0" * 400
    body = f'{{"instances": {{"period": {huge}}}}}'
    response = _send(served, "POST", "/v1/models/elec/predict", body)
    assert response.status_code == 422, response.text
    assert "outside the 64-bit range" in response.json()["error"]
    assert len(response.json()["error"]) < 300  # the number is cut, not echoed in full
    assert _snapshot(served) == before


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 400, 5_000, 100_000])
def test_deeply_nested_json_is_422_and_the_deployment_stays_readable(
    served: TestClient, depth: int
) -> None:
    before = _snapshot(served)
    nested = "[" * depth + "]" * depth
    for url, body in (
        ("/v1/models/elec/predict", nested),
        ("/v1/models/elec/deployment", f'{{"default_response": {nested}, "live_version": 1}}'),
    ):
        response = _send(served, "PUT" if url.endswith("deployment") else "POST", url, body)
        assert response.status_code == 422, response.text
        assert f"nested more than {MAX_JSON_DEPTH} levels" in response.json()["error"]
    assert _snapshot(served) == before


def test_nesting_up_to_the_limit_is_accepted(served: TestClient) -> None:
    nested: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH - 1):  # the body object itself is one level
        nested = [nested]
    response = served.patch(
        "/v1/models/elec/deployment", json={"default_response": nested, "reason": "deep but fine"}
    )
    assert response.status_code == 200, response.text
    assert served.get("/v1/models").status_code == 200
    served.patch("/v1/models/elec/deployment", json={"default_response": None})


@pytest.mark.parametrize("too_big", [str(MAX_ID + 1), TOO_BIG, "1" + "0" * 30])
def test_ids_beyond_an_integer_column_are_422_on_sqlite_and_postgresql(
    client: TestClient, elec_artifacts: dict[str, bytes], too_big: str
) -> None:
    deploy_elec(client, elec_artifacts)
    n = too_big
    for method, url, body in (
        ("GET", f"/v1/models/elec/versions/{n}", None),
        ("GET", f"/v1/incidents/{n}", None),
        ("POST", f"/v1/actions/{n}/undo", None),
        ("POST", f"/v1/approvals/{n}", '{"decision": "approve", "reason": "x"}'),
        ("GET", f"/v1/models/elec/deployment/history?limit={n}", None),
        ("POST", "/v1/approvals", f'{{"id": {n}, "decision": "approve", "reason": "x"}}'),
        ("POST", "/v1/models/elec/deployment/undo", f'{{"revision": {n}}}'),
        ("PATCH", "/v1/models/elec/deployment", f'{{"live_version": {n}}}'),
        ("PUT", "/v1/models/elec/deployment", f'{{"live_version": 1, "shadow_version": {n}}}'),
        ("POST", "/v1/models/elec/probe", f'{{"version": {n}}}'),
    ):
        response = _send(client, method, url, body)
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"]
    history = client.get("/v1/models/elec/deployment/history").json()
    assert [d["revision"] for d in history] == [1]
    # the largest id a column holds is an ordinary unknown id
    assert client.get(f"/v1/models/elec/versions/{MAX_ID}").status_code == 404
    assert client.get(f"/v1/incidents/{MAX_ID}").status_code == 404
    unknown = client.patch("/v1/models/elec/deployment", json={"live_version": MAX_ID})
    assert unknown.status_code == 404


def test_a_bad_version_timeout_in_the_query_is_422(
    served: TestClient, elec_artifacts: dict[str, bytes]
) -> None:
    for value in ("1e999", "nan", "-5", "soon"):
        response = served.post(
            f"/v1/models/elec/versions?timeout_ms={value}",
            content=elec_artifacts["v1"],
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 422, response.text
        assert "timeout_ms" in response.json()["error"]
    assert [v["number"] for v in served.get("/v1/models/elec/versions").json()] == [1, 2]


def test_a_mistyped_token_request_is_422_not_500(served: TestClient) -> None:
    response = served.post("/v1/tokens", json={"name": 3, "role": "viewer"})
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("invalid request: name:")
    assert served.get("/v1/tokens").json() == []


def test_the_python_api_refuses_non_finite_bounds_too() -> None:
    for bound in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValidationError, match="finite"):
            FeatureSpec(name="a", minimum=bound)
        with pytest.raises(ValidationError, match="finite"):
            ModelSpec.model_validate(
                {"name": "m", "task": "regression", "features": [{"name": "a", "maximum": bound}]}
            )


def test_parse_json_keeps_the_64_bit_edges() -> None:
    assert parse_json(b"[9223372036854775807, -9223372036854775808, 1.7976931348623157e308]") == [
        2**63 - 1,
        -(2**63),
        1.7976931348623157e308,
    ]
    for text in (b"[-9223372036854775809]", b"[1e309]", b"[-1e309]"):
        with pytest.raises(InvalidInput):
            parse_json(text)
