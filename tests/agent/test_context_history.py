"""The agent's own remedies are not deploys to blame for the next failure."""

from __future__ import annotations

from pathlib import Path

from empty_sqlite import migrated_sqlite
from mlwarden.agent.loop import Agent
from mlwarden.agent.monitor_source import NoNewWindows
from mlwarden.domain import DeploymentState, FeatureSpec, ModelSpec
from mlwarden.store.repository import Store


def test_a_version_the_agent_puts_back_keeps_the_time_it_first_went_live(tmp_path: Path) -> None:
    store = Store(migrated_sqlite(tmp_path / "m.db"))
    store.create_model(
        ModelSpec(name="m", task="classification", features=[FeatureSpec(name="x")]), "test"
    )
    for _ in range(2):
        store.add_version(
            "m",
            kind="remote",
            artifact=None,
            endpoint={"url": "http://127.0.0.1:9/predict", "protocol": "json"},
            timeout_ms=None,
            training_metrics={},
            reference_sample=None,
            feature_importance=None,
            description="",
            actor="test",
        )
    first = store.set_deployment(
        "m",
        DeploymentState(live_version=1, fallback_version=2),
        actor="release-pipeline",
        reason="first deploy",
    )
    store.set_deployment(
        "m", DeploymentState(live_version=2, fallback_version=2), actor="agent", reason="fallback"
    )
    store.set_deployment(
        "m",
        DeploymentState(live_version=1, fallback_version=2),
        actor="agent",
        reason="data is clean again: back to the champion",
    )
    agent = Agent(store, source=NoNewWindows(), actor="agent")
    context = agent._context("m", None)
    assert context.live_changed_at == first.created_at
    # a deploy by anyone else is a new go-live
    redeploy = store.set_deployment(
        "m",
        DeploymentState(live_version=2, fallback_version=2),
        actor="release-pipeline",
        reason="new release",
    )
    assert agent._context("m", None).live_changed_at == redeploy.created_at
