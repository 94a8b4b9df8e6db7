"""The agent's HTTP routes (real FastAPI app, real tokens) and CLI commands (real store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from agent_helpers import MODEL, Script, finding, setup_deployed
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from empty_sqlite import migrated_sqlite
from mlwarden.agent.loop import Agent
from mlwarden.agent.policy import load_policy_text
from mlwarden.api import routes_agent
from mlwarden.cli.main import app as cli
from mlwarden.domain import Role
from mlwarden.server.app import create_app
from mlwarden.settings import Settings
from mlwarden.store import tables as t
from mlwarden.store.repository import Store


@pytest.fixture()
def advised(tmp_path: Path, elec: pd.DataFrame) -> dict[str, Any]:
    """A store in ``tmp_path`` where an advisory agent queued a fallback for approval."""
    store = Store(migrated_sqlite(tmp_path / "mlwarden.db"))
    setup_deployed(store, elec)
    script = Script()
    agent = Agent(store, load_policy_text("defaults: {mode: advisory}"), script)
    for _ in range(3):
        script.add(MODEL, [finding("latency", 5, ["period"])], latency_p99=800.0)
        agent.run_once()
    return {"store": store, "agent": agent, "dir": tmp_path}


def test_http_routes(advised: dict[str, Any]) -> None:
    store: Store = advised["store"]
    viewer = store.create_token("viewer", Role.VIEWER)
    operator = store.create_token("ops", Role.OPERATOR)
    settings = Settings(data_dir=advised["dir"], auth=True)
    application = create_app(settings, store)
    application.include_router(routes_agent.router)
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    as_operator = {"Authorization": f"Bearer {operator}"}
    with TestClient(application) as client:
        assert client.get("/v1/incidents").status_code == 401
        incidents = client.get("/v1/incidents", headers=as_viewer).json()["incidents"]
        assert incidents[0]["model"] == MODEL and incidents[0]["diagnosis"] == "latency_or_errors"
        # "active" is what the dashboard and the assistant count as open; a typo is an error
        active = client.get("/v1/incidents?state=active", headers=as_viewer).json()["incidents"]
        assert [i["id"] for i in active] == [i["id"] for i in incidents]
        closed = client.get("/v1/incidents?state=resolved,dismissed", headers=as_viewer)
        assert closed.status_code == 200 and closed.json()["incidents"] == []
        typo = client.get("/v1/incidents?state=opne", headers=as_viewer)
        assert typo.status_code == 422 and "unknown incident state 'opne'" in typo.text
        full = client.get(f"/v1/incidents/{incidents[0]['id']}", headers=as_viewer).json()
        assert [e["event"] for e in full["timeline"]][:2] == ["opened", "decision"]
        assert client.get("/v1/incidents/999", headers=as_viewer).status_code == 404
        signals = client.get(f"/v1/models/{MODEL}/signals", headers=as_viewer).json()
        assert {"latency_p99", "records"} <= {s["name"] for s in signals["signals"]}
        found = client.get(f"/v1/models/{MODEL}/findings", headers=as_viewer).json()
        assert found["findings"][0]["kind"] == "latency"
        (request,) = client.get("/v1/approvals?state=pending", headers=as_viewer).json()[
            "approvals"
        ]
        body = {"id": request["id"], "decision": "approve", "reason": "p99 too high"}
        assert client.post("/v1/approvals", json=body, headers=as_viewer).status_code == 403
        no_reason = {"id": request["id"], "decision": "approve"}
        assert client.post("/v1/approvals", json=no_reason, headers=as_operator).status_code == 422
        answered = client.post("/v1/approvals", json=body, headers=as_operator)
        assert answered.status_code == 200, answered.text
        assert answered.json()["state"] == "approved"
        advised["agent"].run_once()
        actions = client.get("/v1/actions", headers=as_viewer).json()["actions"]
        fallback = next(a for a in actions if a["kind"] == "fallback")
        assert fallback["state"] == "done" and fallback["actor"] == "ops"
        undo = client.post(f"/v1/actions/{fallback['id']}/undo", headers=as_viewer)
        assert undo.status_code == 403
        undo = client.post(f"/v1/actions/{fallback['id']}/undo", headers=as_operator)
        assert undo.status_code == 200, undo.text
        assert undo.json()["state"] == "undone"
        again = client.post(f"/v1/approvals/{request['id']}", json=body, headers=as_operator)
        assert again.status_code == 409
    store.close()


def test_cli_commands(advised: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWARDEN_DATA_DIR", str(advised["dir"]))
    runner = CliRunner()
    out = runner.invoke(cli, ["incidents", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)[0]["diagnosis"] == "latency_or_errors"
    active = runner.invoke(cli, ["incidents", "--state", "active", "--json"])
    assert [i["id"] for i in json.loads(active.output)] == [1]
    typo = runner.invoke(cli, ["incidents", "--state", "opne"])
    assert typo.exit_code == 1 and "unknown incident state 'opne'" in typo.output
    shown = runner.invoke(cli, ["incidents", "--show", "1"])
    assert "latency_or_errors" in shown.output and "approval_requested" in shown.output
    pending = json.loads(runner.invoke(cli, ["approvals", "list", "--json"]).output)
    assert pending[0]["state"] == "pending"
    missing_reason = runner.invoke(cli, ["approvals", "approve", str(pending[0]["id"])])
    assert missing_reason.exit_code != 0
    ok = runner.invoke(
        cli, ["approvals", "approve", str(pending[0]["id"]), "--reason", "go", "--actor", "bob"]
    )
    assert ok.exit_code == 0 and "approved" in ok.output
    check = runner.invoke(cli, ["check", "--json"])
    assert check.exit_code == 0, check.output
    actions = json.loads(runner.invoke(cli, ["actions", "list", "--json"]).output)
    fallback = next(a for a in actions if a["kind"] == "fallback")
    assert fallback["state"] == "done"
    undo = runner.invoke(cli, ["actions", "undo", str(fallback["id"])])
    assert undo.exit_code == 0, undo.output
    assert runner.invoke(cli, ["actions", "undo", "999"]).exit_code == 1
    verified = runner.invoke(cli, ["audit", "verify"])
    assert verified.exit_code == 0 and "intact" in verified.output
    export = advised["dir"] / "audit.jsonl"
    assert runner.invoke(cli, ["audit", "export", "-o", str(export)]).exit_code == 0
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert {"approval.approve", "action.undo"} <= {line["action"] for line in lines}
    store: Store = advised["store"]
    with store.engine.begin() as conn:  # tamper with one entry
        conn.execute(update(t.audit_log).where(t.audit_log.c.id == 2).values(actor="mallory"))
    tampered = runner.invoke(cli, ["audit", "verify"])
    assert tampered.exit_code == 1 and "entry 2" in tampered.output
    store.close()


def test_cli_acknowledges_assigns_and_annotates_an_incident(
    advised: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLWARDEN_DATA_DIR", str(advised["dir"]))
    runner = CliRunner()
    acked = runner.invoke(cli, ["incident", "acknowledge", "1", "--actor", "dana", "--json"])
    assert acked.exit_code == 0, acked.output
    assert json.loads(acked.output)["acknowledged"]["by"] == "dana"
    again = runner.invoke(cli, ["incident", "acknowledge", "1", "--actor", "eve"])
    assert again.exit_code == 1 and "already acknowledged by dana" in again.output
    assigned = runner.invoke(cli, ["incident", "assign", "1", "eve", "--actor", "dana"])
    assert assigned.exit_code == 0, assigned.output
    assert "acknowledged by dana" in assigned.output and "assignee eve" in assigned.output
    noted = runner.invoke(cli, ["incident", "note", "1", "paged the data team", "--actor", "eve"])
    assert noted.exit_code == 0 and "1 note(s)" in noted.output
    empty = runner.invoke(cli, ["incident", "note", "1", "  "])
    assert empty.exit_code == 1 and "cannot be empty" in empty.output
    missing = runner.invoke(cli, ["incident", "assign", "999", "eve"])
    assert missing.exit_code == 1 and "no incident 999" in missing.output

    shown = runner.invoke(cli, ["incidents", "--show", "1"])
    assert "acknowledged by dana at " in shown.output and "assignee eve" in shown.output
    assert "paged the data team — eve" in shown.output
    store: Store = advised["store"]
    audited = store.audit_entries(target="incident:1")
    assert [(e["actor"], e["action"]) for e in audited] == [
        ("eve", "incident.annotate"),
        ("dana", "incident.assign"),
        ("dana", "incident.acknowledge"),
    ]
