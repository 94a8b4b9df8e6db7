"""Crash safety: SIGKILL the agent before, during and after an action; a restarted agent finishes
(or rolls back) the journaled action and never does it twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from agent_helpers import MODEL, persistent_windows, send_records, tagged_revisions

from mlwarden.agent.loop import Agent
from mlwarden.agent.monitor_source import NoNewWindows
from mlwarden.agent.policy import load_policy_text
from mlwarden.agent.remedies.base import CRASH_ENV
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.journal import ActionJournal
from mlwarden.store.repository import Store

HERE = Path(__file__).parent
POLICY = "defaults: {approval: {from_severity_actions: []}}"


def run_agent(url: str, crash_at: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at:
        env[CRASH_ENV] = crash_at
    done = subprocess.run(
        [sys.executable, str(HERE / "crash_agent.py"), url, POLICY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, -signal.SIGKILL), done.stderr
    return done.returncode


@pytest.mark.slow
@pytest.mark.parametrize("step", ["journaled", "started", "changed", "done"])
def test_fallback_survives_a_kill_at_every_step(
    step: str, store: Store, deployed: dict, tmp_path: Path
) -> None:
    url = str(store.engine.url)
    persistent_windows(store, "latency")
    assert run_agent(url, step) == -signal.SIGKILL
    journal = ActionJournal(store)
    (action,) = [a for a in journal.list() if a["kind"] == "fallback"]
    expected = {"journaled": "pending", "started": "running", "changed": "running", "done": "done"}
    assert action["state"] == expected[step]
    assert run_agent(url, None) == 0
    Agent(store, load_policy_text(POLICY), NoNewWindows()).run_once()  # and once more
    actions = [a for a in journal.list() if a["kind"] == "fallback"]
    assert len(actions) == 1, "the action ran twice"
    action = actions[0]
    assert action["state"] == "done"
    assert tagged_revisions(store, action["id"], "fallback") == 1
    assert (action["before_revision"], action["after_revision"]) == (2, 3)
    assert store.get_deployment(MODEL).live_version == deployed["v1"]  # type: ignore[union-attr]
    incident = AgentRepo(store).list_incidents()[0]
    assert incident["state"] == "verifying"
    # the alert that goes with the fallback is sent once, whenever the agent died, and says
    # how the fallback ended
    (alert,) = [a for a in journal.list() if a["kind"] == "alert"]
    assert alert["state"] == "done"
    (event,) = store.events(MODEL, kinds=["alert"])
    assert "action: fallback (done)" in event["details"]["payload"]["text"]


@pytest.mark.slow
@pytest.mark.parametrize("step", ["registered", "staged"])
def test_retrain_killed_midway_is_finished_once(
    step: str, store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    send_records(store, elec.iloc[30000:31000], version=deployed["v2"])
    persistent_windows(store, "concept_drift", performance_drop=0.1)
    url = str(store.engine.url)
    assert run_agent(url, step) == -signal.SIGKILL
    assert run_agent(url, None) == 0
    (action,) = [a for a in ActionJournal(store).list() if a["kind"] == "retrain"]
    assert action["state"] == "done", action["error"]
    assert action["attempts"] == 2
    versions = [v.number for v in store.list_versions(MODEL)]
    assert versions == [1, 2, 3], "one candidate version, not two"
    assert tagged_revisions(store, action["id"], "canary") == 1
    # the candidate waits as a canary for its own production evidence (agent.canary)
    deployment = store.get_deployment(MODEL)
    assert deployment is not None and deployment.canary_version == 3
    assert deployment.live_version == deployed["v2"]


@pytest.mark.slow
def test_failed_action_after_a_crash_rolls_back(store: Store, deployed: dict) -> None:
    """A restarted agent whose resumed action fails leaves the deployment as it was."""
    persistent_windows(store, "latency")
    url = str(store.engine.url)
    assert run_agent(url, "started") == -signal.SIGKILL
    # while the agent was down an operator removed the fallback version the action targets
    state = store.get_deployment(MODEL).model_dump(include={"live_version"})  # type: ignore[union-attr]
    from mlwarden.domain import DeploymentState

    store.set_deployment(MODEL, DeploymentState(**state), actor="ops", reason="no fallback")
    assert run_agent(url, None) == 0
    (action,) = [a for a in ActionJournal(store).list() if a["kind"] == "fallback"]
    assert action["state"] == "failed"
    assert store.get_deployment(MODEL).live_version == deployed["v2"]  # type: ignore[union-attr]
    assert AgentRepo(store).list_incidents()[0]["state"] == "escalated"
