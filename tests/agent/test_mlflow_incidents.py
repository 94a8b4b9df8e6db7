"""Closed incidents logged to MLflow tracking (a SQLite tracking store in tmp_path), once
each, only when a tracking server is named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlwarden.agent.mlflow_incidents import EXPERIMENT, IncidentRuns, log_closed_incidents
from mlwarden.domain import DeploymentState, FeatureSpec, ModelSpec, Task
from mlwarden.store import Store
from mlwarden.store.incidents import AgentRepo

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_a_closed_incident_becomes_one_mlflow_run_with_its_signals_by_window(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    store = sqlite_store
    store.create_model(
        ModelSpec(name="m", task=Task.CLASSIFICATION, features=[FeatureSpec(name="x")], target="y")
    )
    store.add_version("m", kind="remote", endpoint={"url": "http://127.0.0.1:9/predict"})
    store.set_deployment("m", DeploymentState(live_version=1), actor="t", reason="first")
    repo = AgentRepo(store)
    for w in range(1, 9):
        accuracy = 0.9 if w < 4 else 0.6
        repo.save_window("m", w, T0 + timedelta(hours=w), {"accuracy": accuracy}, [])
    closed = repo.create_incident("m", 4, {}, "accuracy fell", scope="performance")
    repo.update_incident(closed, last_window=6, severity="high", kinds=["concept_drift"])
    repo.update_incident(closed, state="resolved", event="resolved", text="recovered")
    still_open = repo.create_incident("m", 8, {}, "again")

    runs: list[IncidentRuns] = []
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    log_closed_incidents(store, runs)  # no tracking server named: nothing, no ./mlruns
    assert runs == [] and list(workdir.iterdir()) == []

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    log_closed_incidents(store, runs)
    log_closed_incidents(store, runs)  # the next pass: nothing new
    client = mlflow.MlflowClient(tracking)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    found = client.search_runs([experiment.experiment_id])
    assert len(found) == 1  # the closed incident, once; not the open one
    run = found[0]
    assert run.data.tags["mlwarden.incident"] == str(closed) != str(still_open)
    assert run.data.tags["mlwarden.state"] == "resolved"
    assert run.data.tags["mlwarden.severity"] == "high"
    assert run.info.run_name == f"m incident {closed}" and run.info.status == "FINISHED"
    assert run.data.params["first_window"] == "4" and run.data.params["last_window"] == "8"
    history = client.get_metric_history(run.info.run_id, "accuracy")
    # windows 1-8 (the margin either side, within what exists), by window
    assert [(m.step, m.value) for m in history] == [(w, 0.9 if w < 4 else 0.6) for w in range(1, 9)]
    stored = client.download_artifacts(run.info.run_id, "incident.json", str(tmp_path))
    assert json.loads(Path(stored).read_text())["summary"] == "accuracy fell"
    # another process (a restarted agent) finds it logged and does not log it again
    assert IncidentRuns(store, tracking).log_closed() == []
    assert list(workdir.iterdir()) == []
