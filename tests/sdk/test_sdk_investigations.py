"""The SDK's investigations against a real server (Uvicorn on a free loopback port, auth on, an
operator's token) investigating a real scikit-learn model behind its own HTTP server: start one
from a DataFrame, wait for it while it reports progress, read its report in each format, page
through its records; refusals and a wait that times out say why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlwarden import Client
from mlwarden.sdk import ClientError
from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.settings import Settings
from mlwarden.store import Store
from model_http import ModelServer, probe_policy, sample_rows

SIZES: dict[str, Any] = {"baseline": 150, "windows": 3, "window_size": 60, "rate_per_s": 1000}


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    policy = probe_policy(tmp_path)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        auth=True,
        agent_policy=policy,
        agent_in_server=False,
        write_flush_interval_s=0.05,
    )
    with Store(settings.resolved_database_url) as store:
        tokens = {
            "operator": store.create_token("olivia", "operator"),
            "viewer": store.create_token("victor", "viewer"),
        }
    with BackgroundServer(create_app(settings)) as server:
        yield server.url, tokens


@pytest.fixture
def model() -> Iterator[ModelServer]:
    served = ModelServer()
    yield served
    served.close()


def test_investigate_wait_and_read_the_report(
    served: tuple[str, dict[str, str]], model: ModelServer
) -> None:
    url, tokens = served
    model.degrade_after(150 + 60, "collapse")
    sample = pd.DataFrame(sample_rows())
    seen: list[dict[str, Any]] = []
    with Client(url, token=tokens["operator"]) as client:
        started = client.investigate(model.url, sample, target="label", **SIZES)
        assert started["state"] in ("queued", "running") and started["url"] == model.url
        assert started["params"]["sample_rows"] == 300 and started["params"]["target"] == "label"
        with pytest.raises(ClientError) as running:  # no report while it runs
            client.investigation_report(started["id"])
        assert running.value.status == 409
        done = client.wait_for_investigation(
            started["id"], timeout_s=120, poll_s=0.05, on_progress=seen.append
        )
        assert done["state"] == "done", done["error"]
        assert done["result"]["root_cause"]["id"] == "confidence_collapse"
        assert seen and all(r["state"] in ("queued", "running") for r in seen)
        dones = [r["progress"]["done"] for r in seen]
        assert dones == sorted(dones) and any(0 < d < 330 for d in dones)  # progress, in order

        markdown = client.investigation_report(done["id"])
        assert markdown.startswith("# Incident report") and "Confidence collapse" in markdown
        assert "<html" in client.investigation_report(done["id"], "html")
        as_json = client.investigation_report(done["id"], "json")
        assert as_json["matches"][0]["id"] == "confidence_collapse"

        records = list(client.investigation_records(done["id"], page_size=100))
        assert len(records) == 330
        assert [r["features"]["x0"] for r in records[:300]] != [
            row["x0"] for row in sample_rows()
        ]  # shuffled once, then cycled
        assert list(client.investigation_records(done["id"], start=320)) == records[320:]
        listed = client.investigations()
        assert listed[0]["id"] == done["id"] and listed[0]["brief"]["incident"] is True
        assert client.investigation(done["id"])["progress"]["percent"] == 100.0


def test_refusals_and_a_wait_that_times_out(
    served: tuple[str, dict[str, str]], model: ModelServer
) -> None:
    url, tokens = served
    with Client(url, token=tokens["viewer"]) as viewer:
        with pytest.raises(ClientError) as forbidden:
            viewer.investigate(model.url, sample_rows(10))
        assert forbidden.value.status == 403
    with Client(url, token=tokens["operator"]) as client:
        with pytest.raises(ClientError) as refused:
            client.investigate("ftp://models.example/predict", sample_rows(10))
        assert refused.value.status == 422 and "not an http(s) URL" in refused.value.message
        with pytest.raises(ClientError) as no_rows:
            client.investigate(model.url)
        assert "not the endpoint of a registered model" in no_rows.value.message
        with pytest.raises(ClientError) as missing:
            client.wait_for_investigation(99)
        assert missing.value.status == 404
        with pytest.raises(ClientError) as bad_page:
            list(client.investigation_records(1, page_size=10_000))
        assert bad_page.value.status == 422 and "limit" in bad_page.value.message

        slow = client.investigate(model.url, sample_rows(), **{**SIZES, "rate_per_s": 20})
        with pytest.raises(TimeoutError, match=r"still (queued|running) after 0.3 s"):
            client.wait_for_investigation(slow["id"], timeout_s=0.3, poll_s=0.1)
        with Client(url, token=tokens["viewer"]) as viewer, pytest.raises(ClientError) as denied:
            viewer.stop_investigation(slow["id"])
        assert denied.value.status == 403
        client.stop_investigation(slow["id"])  # the slow job need not run to its end
        stopped = client.wait_for_investigation(slow["id"], timeout_s=60, poll_s=0.05)
        assert stopped["state"] == "failed" and "stopped by " in stopped["error"]
        with pytest.raises(ClientError) as ended:
            client.stop_investigation(slow["id"])
        assert ended.value.status == 409
        failed_model = client.investigate(
            f"{model.url}-nothing-here", sample_rows(), **SIZES, timeout_ms=50
        )
        model.degrade_after(0, "garbage")
        failed = client.wait_for_investigation(failed_model["id"], timeout_s=120, poll_s=0.05)
        assert failed["state"] == "failed" and failed["error"]
