"""`mlwarden diagnose` through Typer's runner, and the routes through the real app (TestClient)."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mlwarden.cli.main import app
from mlwarden.server import create_app
from mlwarden.settings import Settings

runner = CliRunner()
TEXT = "accuracy fell from 0.89 to 0.71 right after we rolled out v14"


def test_cli_json_is_the_contract_and_deterministic() -> None:
    first = runner.invoke(app, ["diagnose", TEXT, "--json"])
    second = runner.invoke(app, ["diagnose", TEXT, "--json"])
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout
    out = json.loads(first.stdout)
    assert out["matched"] is True
    assert out["matches"][0]["id"] == "bad_model_deploy"
    assert out["matches"][0]["severity"] == "critical"  # 18 points after a deploy


def test_cli_rich_output_and_no_match() -> None:
    result = runner.invoke(app, ["diagnose", "p99 went from 200ms to 2s", "--top", "1"])
    assert result.exit_code == 0
    assert "Inference latency spike" in result.stdout and "CRITICAL" in result.stdout
    assert "latency 200 ms -> 2000 ms" in result.stdout
    none = runner.invoke(app, ["diagnose", "how do I center a div"])
    assert "generic triage checklist" in none.stdout
    assert json.loads(
        runner.invoke(app, ["diagnose", "how do I center a div", "--json"]).stdout
    ) == {"matched": False, "matches": []}


def test_cli_list_and_scenario() -> None:
    listed = json.loads(runner.invoke(app, ["diagnose", "--list", "--json"]).stdout)
    assert len(listed) >= 25 and listed[0]["id"] == "bad_model_deploy"
    table = runner.invoke(app, ["diagnose", "--list"])
    assert "feature_null_explosion" in table.stdout
    one = json.loads(
        runner.invoke(app, ["diagnose", "--scenario", "timezone_bug", "--json"]).stdout
    )
    assert one["matches"][0]["id"] == "timezone_bug"
    bad = runner.invoke(app, ["diagnose", "--scenario", "nope"])
    assert bad.exit_code == 2 and "no playbook 'nope'" in bad.stderr


def test_cli_user_playbooks_folder(tmp_path) -> None:
    missing = str(tmp_path / "x")
    result = runner.invoke(app, ["diagnose", "--list", "--json", "--playbooks", missing])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_router_text_scenario_and_list(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path}/m.db")
    with TestClient(create_app(settings)) as client:
        _router_text_scenario_and_list(client)


def _router_text_scenario_and_list(client: TestClient) -> None:
    r = client.post(
        "/v1/diagnose",
        json={"text": "vicprice is NaN for 60% of rows since 14:02", "features": ["vicprice"]},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["matches"][0]["id"] == "feature_null_explosion"
    assert body["matches"][0]["severity"] == "critical"
    assert body["facts"]["features"] == ["vicprice"] and body["facts"]["since"] == "14:02"
    assert (
        client.post("/v1/diagnose", json={"scenario": "memory_leak"}).json()["matches"][0]["id"]
        == "memory_leak"
    )
    assert client.post("/v1/diagnose", json={"scenario": "nope"}).status_code == 404
    assert client.post("/v1/diagnose", json={}).status_code == 422
    assert client.post("/v1/diagnose", json={"text": " "}).status_code == 422
    scenarios = client.get("/v1/diagnose/scenarios").json()
    assert len(scenarios) >= 25
