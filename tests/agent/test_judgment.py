"""Judgment on drifting data: one incident per cause, drift accepted, approvals and alerts that
never hold up another incident (a real model, a real store, the real agent)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from agent_helpers import MODEL, Receiver, Script, finding, send_records
from test_loop import agent_for, remedies

from mlwarden.store.approvals import Approvals
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store


def drift() -> Any:
    return finding("data_drift", 6, ["nswprice"])


def by_scope(store: Store) -> dict[str, dict[str, Any]]:
    """The newest incident of each scope."""
    out: dict[str, dict[str, Any]] = {}
    for incident in AgentRepo(store).list_incidents():  # newest first
        out.setdefault(incident["scope"], incident)
    return out


def test_drift_from_the_first_window_does_not_swallow_a_later_pipeline_failure(
    store: Store, deployed: dict
) -> None:
    script = Script()
    agent = agent_for(store, script)
    for _ in range(4):  # the inputs drift from the first window on, performance holds
        script.add(MODEL, [drift()], accuracy=0.8)
        agent.run_once()
    nulls = finding("data_quality", 8, ["nswprice"], traffic_share=0.6)
    for _ in range(3):
        script.add(MODEL, [drift(), nulls], accuracy=0.8, **{"null_rate.nswprice": 0.6})
        agent.run_once()
    incidents = by_scope(store)
    assert set(incidents) == {"drift", "quality"}
    quality = AgentRepo(store).get_incident(incidents["quality"]["id"])
    assert quality["diagnosis"] == "data_quality" and quality["state"] == "verifying"
    assert [a["kind"] for a in remedies(store)] == ["fallback"]
    # the pipeline is fixed while the drift goes on: the quality incident is verified on its
    # own symptom and resolved; the drift, harmless for six windows, is accepted
    for _ in range(2):
        script.add(MODEL, [drift()], accuracy=0.8, **{"null_rate.nswprice": 0.0})
        agent.run_once()
    quality = AgentRepo(store).get_incident(incidents["quality"]["id"])
    assert quality["state"] == "resolved", quality["timeline"]
    assert store.get_deployment(MODEL).live_version == deployed["v2"]  # type: ignore[union-attr]
    drift_incident = AgentRepo(store).get_incident(incidents["drift"]["id"])
    assert drift_incident["state"] == "accepted"
    assert "accepted" in [e["event"] for e in drift_incident["timeline"]]
    assert store.audit_entries(action="incident.accepted")
    # accepted drift takes the drift findings: no new drift incident opens while it lasts
    script.add(MODEL, [drift()], accuracy=0.8)
    agent.run_once()
    assert [i["scope"] for i in AgentRepo(store).list_incidents()].count("drift") == 1


def test_a_new_failure_is_alerted_although_another_incident_alerted_a_minute_ago(
    store: Store, deployed: dict, receiver: Receiver
) -> None:
    script = Script()
    agent = agent_for(
        store,
        script,
        f"defaults: {{alert: {{webhook_url: '{receiver.url}'}}, cooldown_minutes: {{alert: 30}},"
        " actions: {latency_or_errors: [alert]}}",
    )
    for _ in range(3):
        script.add(MODEL, [drift()], accuracy=0.8)
        agent.run_once()
    assert len(receiver.bodies) == 1  # the drift
    slow = finding("latency", 5, [], traffic_share=1.0)
    for _ in range(3):
        script.add(MODEL, [drift(), slow], accuracy=0.8, latency_p99_ms=400.0)
        agent.run_once()
    assert len(receiver.bodies) == 2, [b.get("title") for b in receiver.bodies]
    assert "latency" in str(receiver.bodies[-1])
    # and the same incident is not alerted again within its cooldown
    script.add(MODEL, [drift(), slow], accuracy=0.8, latency_p99_ms=400.0)
    agent.run_once()
    assert len(receiver.bodies) == 2


def test_a_pending_approval_holds_only_its_own_incident(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    send_records(store, elec.iloc[4000:4600], version=deployed["v2"])  # labels for a retrain
    script = Script()
    agent = agent_for(store, script, "defaults: {approval: {always: [retrain]}}")
    for _ in range(3):
        script.add(MODEL, accuracy=0.8)
        agent.run_once()
    drop = finding("concept_drift", 4, [], performance_drop=0.1)
    for _ in range(3):
        script.add(MODEL, [drop], accuracy=0.7)
        agent.run_once()
    pending = Approvals(store).list(state="pending")
    assert [p["action"] for p in pending] == ["retrain"]
    # while the retrain waits, the pipeline breaks: the fallback is not held up
    nulls = finding("data_quality", 8, ["nswprice"], traffic_share=0.6)
    for _ in range(3):
        script.add(MODEL, [drop, nulls], accuracy=0.6)
        agent.run_once()
    assert [a["kind"] for a in remedies(store)] == ["fallback"]
    assert store.get_deployment(MODEL).live_version == deployed["v1"]  # type: ignore[union-attr]
    assert [p["action"] for p in Approvals(store).list(state="pending")] == ["retrain"]


def test_an_alert_with_nowhere_to_go_says_so(store: Store, deployed: dict) -> None:
    script = Script()
    agent = agent_for(store, script)  # no webhook configured
    for _ in range(3):
        script.add(MODEL, [drift()], accuracy=0.8)
        agent.run_once()
    alert = next(a for a in agent.journal.list() if a["kind"] == "alert")
    assert alert["result"]["delivered"] is False
    assert alert["result"]["outcome"] == "not delivered: no webhook configured"


def test_a_changed_diagnosis_is_kept_in_the_incident_history(store: Store, deployed: dict) -> None:
    repo = AgentRepo(store)
    incident = repo.create_incident(MODEL, 3, {}, "performance: concept_drift", scope="performance")
    repo.update_incident(
        incident,
        diagnosis="concept_drift",
        severity="high",
        event="decision",
        text="performance dropped while the inputs stayed stable",
    )
    repo.update_incident(
        incident,
        diagnosis="regression_after_deploy",
        severity="critical",
        event="decision",
        text="the drop began after version 3 went live",
    )
    timeline = repo.get_incident(incident)["timeline"]
    changed = [e for e in timeline if e["event"] == "rediagnosed"]
    assert len(changed) == 1  # the first diagnosis is no change
    assert changed[0]["text"].startswith(
        "diagnosis concept_drift → regression_after_deploy; severity high → critical: the drop"
    )


def test_a_regression_answer_is_wrong_when_it_misses_by_more_than_the_typical_error() -> None:
    from mlwarden.agent.reports import answers_frame
    from mlwarden.domain import Task

    rows = [{"id": "r1", "features": {"x": 1.0}, "label": 10.0, "prediction": 12.5}]
    assert answers_frame(rows, Task.REGRESSION, typical_error=2.0)["error"].tolist() == [1.0]
    assert answers_frame(rows, Task.REGRESSION, typical_error=3.0)["error"].tolist() == [0.0]
    assert answers_frame(rows, Task.CLASSIFICATION)["error"].tolist() == [1.0]


def test_a_new_incident_persists_on_its_own_windows_after_a_resolved_one(
    store: Store, deployed: dict
) -> None:
    """The latency windows of a resolved incident were that failure's, remedied and verified:
    one slow window after the resolution is one window of a new incident, not the fourth of
    the old one, so nothing is decided on it yet."""
    script = Script()
    agent = agent_for(store, script)
    for _ in range(3):
        script.add(MODEL, [finding("latency", 5)], latency_p99=900.0)
        agent.run_once()
    for _ in range(2):
        script.add(MODEL, latency_p99=20.0)
        agent.run_once()
    first = AgentRepo(store).list_incidents()[0]
    assert first["state"] == "resolved" and [a["kind"] for a in remedies(store)] == ["fallback"]
    script.add(MODEL, [finding("latency", 5)], latency_p99=900.0)
    agent.run_once()
    newest = AgentRepo(store).get_incident(AgentRepo(store).list_incidents()[0]["id"])
    assert newest["id"] != first["id"] and newest["state"] == "open"
    assert newest["decisions"] == []  # nothing persisted yet: nothing to decide
    assert len(remedies(store)) == 1
