"""``/metrics`` carries what the monitor and the agent know, not only the gateway's counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api_helpers import deploy_elec, state_of
from fastapi.testclient import TestClient

from mlwarden.domain import ActionKind
from mlwarden.store.approvals import Approvals
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.journal import ActionJournal


def test_metrics_show_the_last_window_incidents_actions_and_approvals(
    client: TestClient, elec_artifacts: dict[str, bytes]
) -> None:
    deploy_elec(client, elec_artifacts)
    store = state_of(client).store
    repo = AgentRepo(store)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    repo.save_window(
        "elec",
        0,
        start,
        {"accuracy": 0.9, "drift.nswprice": 0.02, "null_rate.nswprice": 0.0},
        [],
    )
    repo.save_window(
        "elec",
        1,
        start + timedelta(hours=1),
        {
            "accuracy": 0.71,
            "latency_p99_ms": 15.0,
            "drift.nswprice": 0.4,
            "drift.ks.nswprice": 0.3,
            "drift_p.nswprice": 0.001,
            "null_rate.nswprice": 0.6,
            "score_mean": 0.5,
        },
        [],
    )
    incident = repo.create_incident("elec", 1, {}, "nulls in nswprice")
    repo.update_incident(incident, severity="critical")
    closed = repo.create_incident("elec", 0, {}, "earlier")
    repo.update_incident(closed, state="resolved")
    journal = ActionJournal(store)
    journal.create("elec", ActionKind.FALLBACK, {"to_version": 2}, incident_id=incident)
    Approvals(store).request(
        "elec", ActionKind.RETRAIN, {}, expiry_minutes=60, incident_id=incident
    )

    text = client.get("/metrics").text
    lines = set(text.splitlines())
    # the last window only, with the curated signals and per-feature drift and nulls
    assert 'mlwarden_model_signal{model="elec",signal="accuracy"} 0.71' in lines
    assert 'mlwarden_model_signal{model="elec",signal="latency_p99_ms"} 15.0' in lines
    assert 'mlwarden_feature_drift{feature="nswprice",model="elec"} 0.4' in lines
    assert 'mlwarden_feature_null_rate{feature="nswprice",model="elec"} 0.6' in lines
    assert 'mlwarden_model_last_window{model="elec"} 1.0' in lines
    (stamp,) = [
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("mlwarden_model_last_window_timestamp_seconds{")
    ]
    assert stamp == (start + timedelta(hours=1)).timestamp()
    assert "score_mean" not in text and "drift_p" not in text and "ks" not in text
    # only incidents still open count; the journal and the approval queue
    assert 'mlwarden_incidents{model="elec",severity="critical",state="open"} 1.0' in lines
    assert 'state="resolved"' not in text
    assert 'mlwarden_agent_actions{kind="fallback",model="elec",state="pending"} 1.0' in lines
    assert 'mlwarden_approvals_pending{model="elec"} 1.0' in lines
    assert "mlwarden_fleet_metrics_up 1.0" in lines
    # the gateway's own counters are still there
    assert "# TYPE mlwarden_predictions_total counter" in text
