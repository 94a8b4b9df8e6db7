"""``POST /v1/investigations`` end to end over real HTTP: the server's job probes a real
scikit-learn model behind its own HTTP server, reports progress while it runs, and keeps the
investigation in the store; bad requests are refused at once, endpoint failures fail the job
with their reason, and a server that stops keeps what its jobs collected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import make_settings

from mlwarden.agent.investigate import MAX_SAMPLE_ROWS
from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer, free_port
from mlwarden.settings import Settings
from mlwarden.store import Store
from model_http import ModelServer, probe_policy, sample_rows, until

SIZES: dict[str, Any] = {"baseline": 150, "windows": 3, "window_size": 60, "rate_per_s": 1000}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    policy = probe_policy(tmp_path)
    return make_settings(tmp_path, agent_policy=policy, agent_in_server=False)


@pytest.fixture
def server(settings: Settings) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(settings)) as running:
        yield running


@pytest.fixture
def model() -> Iterator[ModelServer]:
    served = ModelServer()
    yield served
    served.close()


def _finished(base: str, investigation: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        row = httpx.get(f"{base}/v1/investigations/{investigation}").json()
        return row if row["state"] in ("done", "failed") else None

    result: dict[str, Any] = until(done)
    return result


def test_an_investigation_over_http_from_start_to_report(
    server: BackgroundServer, model: ModelServer, settings: Settings
) -> None:
    model.degrade_after(150 + 60, "collapse")
    body = {"url": model.url, "rows": sample_rows(), "target": "label", **SIZES}
    started = httpx.post(server.url + "/v1/investigations", json=body)
    assert started.status_code == 202, started.text
    record = started.json()
    assert started.headers["location"] == f"/v1/investigations/{record['id']}"
    assert record["state"] in ("queued", "running") and record["url"] == model.url
    assert record["params"]["sample_rows"] == 300 and record["params"]["total_probes"] == 330

    # progress while it runs: a stage and probes done of the total
    def midway() -> dict[str, Any] | None:
        row = httpx.get(f"{server.url}/v1/investigations/{record['id']}").json()
        return row if 0 < row["progress"]["done"] < 330 else None

    running = until(midway)
    assert running["progress"]["total"] == 330
    assert running["progress"]["stage"] in ("baseline", "monitoring")
    assert 0 < running["progress"]["percent"] < 100

    finished = _finished(server.url, record["id"])
    assert finished["state"] == "done", finished["error"]
    result = finished["result"]
    assert result["baseline"]["probes"] == 150 and result["baseline"]["confidence_mean"] > 0.9
    assert result["incident"] is True and result["root_cause"]["id"] == "confidence_collapse"
    assert {r["action"] for r in result["recommendations"]} >= {"fallback", "retrain"}
    assert "records" not in finished
    with_records = httpx.get(
        f"{server.url}/v1/investigations/{record['id']}", params={"records": "true"}
    ).json()
    assert len(with_records["records"]) == 330  # up to a page, the records come whole
    assert with_records["records_page"] == {
        "offset": 0,
        "limit": 1000,
        "returned": 330,
        "total": 330,
        "next_offset": None,
    }
    # a page at a time: the records endpoint, its next page named in the answer and the Link
    paged: list[dict[str, Any]] = []
    url: str | None = f"/v1/investigations/{record['id']}/records?limit=100"
    while url is not None:
        page = httpx.get(server.url + url)
        assert page.status_code == 200
        paged += page.json()["records"]
        link = page.headers.get("link")
        if page.json()["next_offset"] is None:
            assert link is None and page.json()["returned"] == 30
            url = None
        else:
            assert link is not None
            url = link.split(">")[0].lstrip("<")
            assert f"offset={page.json()['next_offset']}&limit=100" in url
    assert paged == with_records["records"]
    window = httpx.get(
        f"{server.url}/v1/investigations/{record['id']}",
        params={"records": "true", "records_offset": 150, "records_limit": 60},
    )
    assert window.json()["records"] == with_records["records"][150:210]
    assert window.json()["records_page"]["next_offset"] == 210
    assert 'rel="next"' in window.headers["link"]

    markdown = httpx.get(f"{server.url}/v1/investigations/{record['id']}/report")
    assert markdown.status_code == 200 and markdown.text.startswith("# Incident report")
    assert "Confidence collapse" in markdown.text
    html = httpx.get(
        f"{server.url}/v1/investigations/{record['id']}/report", params={"format": "html"}
    )
    assert html.headers["content-type"].startswith("text/html") and "<html" in html.text
    listed = httpx.get(server.url + "/v1/investigations").json()["investigations"]
    assert [row["id"] for row in listed] == [record["id"]] and listed[0]["state"] == "done"
    with Store(settings.resolved_database_url) as store:
        started_by = [e for e in store.audit_entries() if e["action"] == "investigation.start"]
    assert started_by[0]["details"]["investigation"] == record["id"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"url": "ftp://models.example/predict", "rows": [{"x": 1}]}, "not an http(s) URL"),
        ({"url": "file:///etc/passwd", "rows": [{"x": 1}]}, "not an http(s) URL"),
        ({"url": "http://127.0.0.1:9/predict"}, "not the endpoint of a registered model"),
        ({"url": "http://127.0.0.1:9/predict", "rows": []}, "has no rows"),
        ({"url": "http://127.0.0.1:9/predict", "rows": [1, 2]}, "rows"),
        ({"url": "http://127.0.0.1:9/p", "rows": [{"x": {"a": 1}}]}, "not a number"),
        ({"url": "http://127.0.0.1:9/p", "rows": [{"x": 1}], "baseline": 5}, "baseline"),
        (
            {
                "url": "http://127.0.0.1:9/p",
                "rows": [{"x": 1}],
                "windows": 100,
                "window_size": 1000,
            },
            "too many",
        ),
        ({"url": "http://127.0.0.1:9/p", "rows": [{"x": 1}], "sample": "x"}, "sample"),
        ({"rows": [{"x": 1}]}, "url"),
    ],
)
def test_a_request_that_cannot_be_investigated_is_refused_at_once(
    server: BackgroundServer, body: dict[str, Any], expected: str
) -> None:
    answer = httpx.post(server.url + "/v1/investigations", json=body)
    assert answer.status_code == 422, answer.text
    assert expected in answer.text
    assert httpx.get(server.url + "/v1/investigations").json()["investigations"] == []


def test_a_sample_too_large_and_a_body_that_is_not_json_are_refused(
    server: BackgroundServer,
) -> None:
    rows = [{"x": i} for i in range(MAX_SAMPLE_ROWS + 1)]
    too_large = httpx.post(
        server.url + "/v1/investigations", json={"url": "http://127.0.0.1:9/p", "rows": rows}
    )
    assert too_large.status_code == 422 and "rows" in too_large.text
    garbage = httpx.post(
        server.url + "/v1/investigations",
        content=b"url=http://x",
        headers={"content-type": "application/json"},
    )
    assert garbage.status_code == 422


@pytest.mark.parametrize("mode", ["unreachable", "garbage", "nested", "timeout"])
def test_an_endpoint_that_cannot_be_probed_fails_the_job_with_its_reason(
    server: BackgroundServer, model: ModelServer, mode: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}/predict" if mode == "unreachable" else model.url
    model.degrade_after(0, {"timeout": "slow"}.get(mode, mode))
    body = {"url": url, "rows": sample_rows(), **SIZES}
    if mode == "timeout":
        body["timeout_ms"] = 50  # the server answers after 300 ms
    started = httpx.post(server.url + "/v1/investigations", json=body)
    assert started.status_code == 202
    finished = _finished(server.url, started.json()["id"])
    assert finished["state"] == "failed" and finished["progress"]["done"] == 1
    expected = {
        "unreachable": "is the URL right",
        "garbage": "invalid JSON",
        "nested": "without a 'predictions' list",
        "timeout": "timed out after 50 ms",
    }[mode]
    assert expected in finished["error"], finished["error"]
    if mode in ("garbage", "nested"):
        assert "response field mapping" in finished["error"]  # the hint: the shapes it reads
    report = httpx.get(f"{server.url}/v1/investigations/{started.json()['id']}/report")
    assert report.status_code == 409 and "failed" in report.json()["error"]


def test_a_server_that_stops_keeps_what_its_investigation_collected(
    settings: Settings, model: ModelServer
) -> None:
    body = {"url": model.url, "rows": sample_rows(), **{**SIZES, "rate_per_s": 40}}
    with BackgroundServer(create_app(settings)) as first:
        investigation = httpx.post(first.url + "/v1/investigations", json=body).json()["id"]
        until(
            lambda: (
                httpx.get(f"{first.url}/v1/investigations/{investigation}").json()["progress"][
                    "done"
                ]
                >= 20
            )
        )
    with BackgroundServer(create_app(settings)) as second:
        row = httpx.get(
            f"{second.url}/v1/investigations/{investigation}", params={"records": "true"}
        ).json()
    assert row["state"] == "failed" and "stopped" in row["error"]
    assert len(row["records"]) == row["progress"]["done"] >= 20
    assert row["finished_at"] is not None


def test_a_remote_version_with_a_response_mapping_is_served_and_investigated(
    server: BackgroundServer, model: ModelServer
) -> None:
    """A remote version registered with its response field mapping answers through the
    gateway, and an investigation of its URL reads its answers with the same mapping."""
    spec = {
        "name": "nested",
        "task": "classification",
        "features": [{"name": f"x{i}"} for i in range(5)],
        "target": "label",
    }
    assert httpx.post(server.url + "/v1/models", json=spec).status_code == 201
    mapping = {"predictions": "result", "prediction": "cls", "confidence": "conf"}
    wrong = httpx.post(
        server.url + "/v1/models/nested/versions/remote",
        json={"url": model.url, "response": {"class": "cls"}},
    )
    assert wrong.status_code == 422 and "unknown response field 'class'" in wrong.text
    added = httpx.post(
        server.url + "/v1/models/nested/versions/remote",
        json={"url": model.url, "response": mapping, "reference": sample_rows()},
    )
    assert added.status_code == 201, added.text
    httpx.put(server.url + "/v1/models/nested/deployment", json={"live_version": 1})
    model.degrade_after(0, "nested")
    row = {k: v for k, v in sample_rows(1)[0].items() if k != "label"}
    answer = httpx.post(server.url + "/v1/models/nested/predict", json={"instances": [row]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["prediction"] == sample_rows(1)[0]["label"]

    started = httpx.post(server.url + "/v1/investigations", json={"url": model.url, **SIZES})
    assert started.status_code == 202, started.text
    finished = _finished(server.url, started.json()["id"])
    assert finished["state"] == "done", finished["error"]
    assert finished["result"]["registered"] == {"model": "nested", "version": 1}
    assert finished["result"]["baseline"]["confidence_mean"] > 0.9


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/records", {"limit": 0}, "query.limit"),
        ("/records", {"limit": 5001}, "query.limit: Input should be less than or equal to 5000"),
        ("/records", {"offset": -1}, "query.offset"),
        ("/records", {"limit": "all"}, "query.limit: Input should be a valid integer"),
        ("", {"records": "true", "records_limit": 100_000}, "query.records_limit"),
        ("", {"records": "true", "records_offset": -5}, "query.records_offset"),
        ("", {"records": "maybe"}, "query.records"),
    ],
)
def test_a_bad_page_of_records_is_refused_with_its_reason(
    server: BackgroundServer, path: str, params: dict[str, Any], field: str
) -> None:
    answer = httpx.get(f"{server.url}/v1/investigations/1{path}", params=params)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"]


def test_the_records_of_no_investigation(server: BackgroundServer) -> None:
    answer = httpx.get(f"{server.url}/v1/investigations/7/records")
    assert answer.status_code == 404 and "no investigation 7" in answer.json()["error"]


def test_the_paging_is_documented_in_the_openapi(server: BackgroundServer) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    records = paths["/v1/investigations/{investigation_id}/records"]["get"]
    limit = next(p for p in records["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 5000 and limit["schema"]["default"] == 1000
    assert "next_offset" in records["description"]
    one = paths["/v1/investigations/{investigation_id}"]["get"]
    assert {p["name"] for p in one["parameters"]} >= {"records", "records_offset", "records_limit"}


def test_an_operator_stops_a_running_investigation_and_keeps_what_it_collected(
    server: BackgroundServer, model: ModelServer, settings: Settings
) -> None:
    slow = {**SIZES, "rate_per_s": 20}  # 330 probes: about 16 s, stopped long before
    body = {"url": model.url, "rows": sample_rows(), "target": "label", **slow}
    record = httpx.post(server.url + "/v1/investigations", json=body).json()

    def probing() -> dict[str, Any] | None:
        row = httpx.get(f"{server.url}/v1/investigations/{record['id']}").json()
        return row if row["progress"]["done"] >= 5 else None

    until(probing)
    stopped = httpx.post(f"{server.url}/v1/investigations/{record['id']}/stop")
    assert stopped.status_code == 200, stopped.text
    finished = _finished(server.url, record["id"])
    assert finished["state"] == "failed"
    assert "the investigation was stopped (stopped by " in finished["error"]
    assert 5 <= finished["progress"]["done"] < 330
    kept = httpx.get(f"{server.url}/v1/investigations/{record['id']}/records").json()
    assert kept["total"] >= 5  # what it collected is kept
    again = httpx.post(f"{server.url}/v1/investigations/{record['id']}/stop")
    assert again.status_code == 409 and "already ended (failed)" in again.text
    assert httpx.post(f"{server.url}/v1/investigations/999/stop").status_code == 404
    with Store.from_settings(settings) as store:
        (entry,) = store.audit_entries(action="investigation.stop")
    assert entry["target"] == model.url
