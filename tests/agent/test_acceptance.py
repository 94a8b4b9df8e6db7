"""Accepted drift (``agent.acceptance``) and the incident state machine: a real store, a deployed
real model, the real agent; the HTTP routes and the CLI for operators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from agent_helpers import (
    MODEL,
    Script,
    deploy_bad_version,
    finding,
    window_accuracy,
)
from fastapi.testclient import TestClient
from test_loop import agent_for, remedies
from typer.testing import CliRunner

from mlwarden.agent.acceptance import absorbed
from mlwarden.api import routes_agent
from mlwarden.cli.main import app as cli
from mlwarden.domain import Role
from mlwarden.server.app import create_app
from mlwarden.settings import Settings
from mlwarden.store.incidents import (
    TRANSITIONS,
    AgentRepo,
    IllegalTransition,
    IncidentState,
    can_move,
)
from mlwarden.store.repository import Store

# a drop on moving inputs no remedy helps (the policy offers none) is accepted after 3 windows
POLICY = (
    "defaults: {drift: {accept_after_windows: 3}, "
    "actions: {covariate_drift_performance_drop: [alert], concept_drift: [alert]}}"
)


def drifted_drop(change_window: int = 0, drop: float = 0.04) -> Any:
    """Data drift with impact: the monitor's verdict on a drop while the inputs moved."""
    impact = {"metric": "accuracy", "drop": drop, "reference": 0.72, "value": 0.72 - drop}
    return finding("data_drift", 4, ["nswprice"], impact=impact, change_window=change_window)


def concept(change_window: int, drop: float = 0.15) -> Any:
    """A performance change the inputs do not explain, dated ``change_window``."""
    return finding("concept_drift", 8, [], change_window=change_window, performance_drop=drop)


def performance_incidents(store: Store) -> list[dict[str, Any]]:
    return [i for i in AgentRepo(store).list_incidents() if i["scope"] == "performance"][::-1]


def test_every_state_has_its_moves_and_final_states_have_none() -> None:
    assert set(TRANSITIONS) == set(IncidentState)
    assert can_move("open", "accepted") and can_move("accepted", "open")
    assert can_move("accepted", "resolved") and can_move("verifying", "open")
    assert not can_move("accepted", "acting") and not can_move("accepted", "verifying")
    for final in ("resolved", "dismissed", "superseded"):
        assert not TRANSITIONS[IncidentState(final)]
        assert can_move(final, final)  # an update that keeps the state


def test_the_store_refuses_an_illegal_move(store: Store, deployed: dict) -> None:
    repo = AgentRepo(store)
    incident = repo.create_incident(MODEL, 0, {}, "drift", scope="drift")
    repo.update_incident(incident, state="accepted", event="accepted", text="harmless")
    with pytest.raises(IllegalTransition, match="is accepted: it cannot become acting"):
        repo.update_incident(incident, state="acting")
    repo.update_incident(incident, state="resolved", event="resolved", text="gone")
    with pytest.raises(IllegalTransition):
        repo.update_incident(incident, state="open")
    assert repo.get_incident(incident)["state"] == "resolved"


def test_an_accepted_drop_absorbs_its_change_and_a_concept_change_gets_its_own_incident(
    store: Store, deployed: dict
) -> None:
    script = Script()
    agent = agent_for(store, script, POLICY)
    for _ in range(5):  # the inputs move and accuracy settles 4 points lower from window 0
        script.add(MODEL, [drifted_drop()], accuracy=0.68)
        agent.run_once()
    (accepted,) = performance_incidents(store)
    assert accepted["diagnosis"] == "covariate_drift_performance_drop"
    assert accepted["state"] == "accepted", accepted["timeline"]
    assert accepted["baseline"]["accepted"]["by"] == "agent"
    assert accepted["baseline"]["accepted"]["drop"] == pytest.approx(0.04)
    assert store.audit_entries(action="incident.accepted")
    # the same drift goes on: absorbed, nothing new opens
    script.add(MODEL, [drifted_drop()], accuracy=0.68)
    agent.run_once()
    assert len(performance_incidents(store)) == 1
    # the relation changes while the inputs go on drifting: a change point after the
    # acceptance is a new failure, with its own incident, judged on its own windows
    change = len(script.windows[MODEL]) + 1  # the next window's number
    for _ in range(3):
        script.add(MODEL, [drifted_drop(), concept(change)], accuracy=0.55)
        agent.run_once()
    first, new = performance_incidents(store)
    assert first["id"] == accepted["id"] and first["state"] == "accepted"
    assert new["first_window"] == change
    assert new["state"] == "open"
    assert new["diagnosis"] == "concept_drift", AgentRepo(store).get_incident(new["id"])
    assert not remedies(store)


def test_absorbed_only_what_was_accepted() -> None:
    accepted = [
        {"scope": "performance", "baseline": {"accepted": {"window": 5, "drop": 0.04}}},
        {"scope": "drift", "baseline": {}},
    ]
    assert absorbed(finding("data_drift", 4, ["x"]), accepted)  # drift without impact
    assert absorbed(concept(3), accepted) and not absorbed(concept(6), accepted)
    # a drop against the reference (no change point) deeper than the accepted one is new
    assert absorbed(finding("concept_drift", 2, [], performance_drop=0.05), accepted)
    assert not absorbed(finding("concept_drift", 2, [], performance_drop=0.2), accepted)
    assert not absorbed(finding("data_quality", 4, ["x"]), accepted)


def _drift_incident(store: Store) -> int:
    script = Script()
    agent = agent_for(store, script, "defaults: {drift: {accept_after_windows: null}}")
    for _ in range(3):
        script.add(MODEL, [finding("data_drift", 6, ["nswprice"])], accuracy=0.8)
        agent.run_once()
    (incident,) = AgentRepo(store).list_incidents()
    assert incident["state"] == "open" and incident["scope"] == "drift"
    return int(incident["id"])


def test_operators_accept_drift_and_undo_it_over_http(
    tmp_path: Path, store: Store, deployed: dict
) -> None:
    incident = _drift_incident(store)
    viewer = store.create_token("viewer", Role.VIEWER)
    operator = store.create_token("ops", Role.OPERATOR)
    application = create_app(Settings(data_dir=tmp_path, auth=True), store)
    application.include_router(routes_agent.router)
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    as_operator = {"Authorization": f"Bearer {operator}"}
    url = f"/v1/incidents/{incident}"
    with TestClient(application) as client:
        body = {"reason": "the new tariff moved prices"}
        assert client.post(f"{url}/accept", json=body, headers=as_viewer).status_code == 403
        assert client.post(f"{url}/accept", json={}, headers=as_operator).status_code == 422
        assert client.post(f"{url}/reopen", json=body, headers=as_operator).status_code == 409
        done = client.post(f"{url}/accept", json=body, headers=as_operator)
        assert done.status_code == 200 and done.json()["state"] == "accepted"
        assert client.post(f"{url}/accept", json=body, headers=as_operator).status_code == 409
        back = client.post(f"{url}/reopen", json={"reason": "prices broke"}, headers=as_operator)
        assert back.status_code == 200 and back.json()["state"] == "open"
    full = AgentRepo(store).get_incident(incident)
    events = [(e["event"], e.get("actor")) for e in full["timeline"]]
    assert ("accepted", "ops") in events and ("reopened", "ops") in events
    assert full["baseline"]["reopened_by"] == "ops" and "accepted" not in full["baseline"]
    accepted = store.audit_entries(action="incident.accepted")[0]["details"]["terms"]
    assert accepted["by"] == "ops" and accepted["drop"] == 0.0  # drift alone: no drop
    assert [e["action"] for e in store.audit_entries(actor="ops")][:2] == [
        "incident.reopened",
        "incident.accepted",
    ]


def test_the_cli_accepts_and_reopens_and_refuses_a_pipeline_failure(
    tmp_path: Path, store: Store, deployed: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident = _drift_incident(store)
    quality = AgentRepo(store).create_incident(MODEL, 3, {}, "nulls", scope="quality")
    monkeypatch.setenv("MLWARDEN_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    said = runner.invoke(
        cli, ["incident", "accept", str(incident), "seasonal", "--actor", "dana", "--json"]
    )
    assert said.exit_code == 0, said.output
    assert json.loads(said.output)["state"] == "accepted"
    refused = runner.invoke(cli, ["incident", "accept", str(quality), "nulls are fine"])
    assert refused.exit_code == 1 and "only drift" in refused.output
    undone = runner.invoke(cli, ["incident", "reopen", str(incident), "not seasonal"])
    assert undone.exit_code == 0 and "(open)" in undone.output
    assert AgentRepo(store).get_incident(incident)["state"] == "open"


def test_a_bad_deploy_during_accepted_drift_is_rolled_back_and_verified_despite_the_drift(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    script = Script()
    agent = agent_for(store, script, POLICY)
    for _ in range(4):
        script.add(MODEL, [drifted_drop()], accuracy=0.68)
        agent.run_once()
    assert [i["state"] for i in performance_incidents(store)] == ["accepted"]
    _, bad = deploy_bad_version(store, elec, deployed["v1"])
    change = len(script.windows[MODEL]) + 1
    for _ in range(3):
        script.add(MODEL, [drifted_drop(), concept(change, round(0.68 - bad, 3))], accuracy=bad)
        agent.run_once()
    (rollback,) = remedies(store)
    assert rollback["kind"] == "rollback" and rollback["params"] == {"to_version": deployed["v2"]}
    # the accepted drift goes on after the rollback: it fails no verification of the rollback
    good = window_accuracy(store, elec.iloc[2000:2600])
    for _ in range(2):
        script.add(MODEL, [drifted_drop()], accuracy=good)
        agent.run_once()
    accepted, deploy = performance_incidents(store)
    assert accepted["state"] == "accepted"
    deploy = AgentRepo(store).get_incident(deploy["id"])
    assert deploy["diagnosis"] == "regression_after_deploy"
    assert deploy["state"] == "resolved", deploy["timeline"]
    assert deploy["verifications"][0]["verdict"] == "recovered"


def test_findings_absorbed_by_an_accepted_incident_never_block_a_verification() -> None:
    from mlwarden.agent.incidents import Scope, WindowView
    from mlwarden.agent.policy import load_policy
    from mlwarden.agent.verify import verify

    policy = load_policy().for_model(MODEL)
    # the drop on moving inputs accepted at window 6, still reported after a rollback that
    # mended a bad deploy's change at window 9 (the accuracy is back at its baseline)
    accepted = [{"scope": "performance", "baseline": {"accepted": {"window": 6, "drop": 0.04}}}]
    after = [
        WindowView(window=w, findings=[drifted_drop(change_window=2)], signals={"accuracy": 0.70})
        for w in (11, 12)
    ]
    kinds = ["concept_drift", "data_drift"]
    args = (after, {"accuracy": 0.70}, kinds, policy)
    blocked = verify(*args, action_kind="rollback", scope=Scope.PERFORMANCE)
    assert not blocked.recovered and "still shows data_drift" in blocked.text
    judged = verify(*args, action_kind="rollback", scope=Scope.PERFORMANCE, accepted=accepted)
    assert judged.recovered, judged.text
    # a change dated after the acceptance is a new failure: it still counts
    new = [
        WindowView(window=w, findings=[concept(9)], signals={"accuracy": 0.70}) for w in (11, 12)
    ]
    later = verify(
        new, *args[1:], action_kind="rollback", scope=Scope.PERFORMANCE, accepted=accepted
    )
    assert not later.recovered


def test_the_agents_acceptance_rebases_the_reference_on_clean_windows_when_the_policy_says(
    store: Store, deployed: dict
) -> None:
    policy = (
        "defaults: {drift: {accept_after_windows: 3, rebaseline_on_accept: true}, "
        "persistence: {n: 3, k: 3}}"
    )
    script = Script()
    agent = agent_for(store, script, policy)
    for _ in range(5):
        script.add(MODEL, [finding("data_drift", 6, ["nswprice"])], accuracy=0.8)
        agent.run_once()
    (incident,) = AgentRepo(store).list_incidents()
    assert incident["state"] == "accepted", incident
    terms = AgentRepo(store).get_incident(incident["id"])["baseline"]["accepted"]
    live = store.get_deployment(MODEL).live_version  # type: ignore[union-attr]
    assert terms["rebaseline"] == {"first": 1, "last": 3, "version": live}
    # quiet because of the new reference: it stays accepted, the record of the reference
    for _ in range(4):
        script.add(MODEL, accuracy=0.8)
        agent.run_once()
    assert AgentRepo(store).get_incident(incident["id"])["state"] == "accepted"


def test_no_rebase_on_windows_with_a_quality_finding(store: Store, deployed: dict) -> None:
    policy = (
        "defaults: {drift: {accept_after_windows: 3, rebaseline_on_accept: true}, "
        "persistence: {n: 3, k: 3}}"
    )
    script = Script()
    agent = agent_for(store, script, policy)
    for n in range(3):
        extra = [finding("data_quality", 6, ["day"], check="constant")] if n == 1 else []
        script.add(MODEL, [finding("data_drift", 6, ["nswprice"]), *extra], accuracy=0.8)
        agent.run_once()
    drift = next(i for i in AgentRepo(store).list_incidents() if i["scope"] == "drift")
    full = AgentRepo(store).get_incident(drift["id"])
    assert full["state"] == "accepted", full["timeline"]
    assert "rebaseline" not in full["baseline"]["accepted"]
    assert "not re-based" in full["timeline"][-1]["text"], full["timeline"]
