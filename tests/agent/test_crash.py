"""Crash safety: SIGKILL the agent before, during and after an action; a restarted agent finishes
(or rolls back) the journaled action and never does it twice."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
from agent_helpers import MODEL, persistent_windows, send_records, tagged_revisions
from crash_agent import one_pass

from mlwarden.agent.loop import Agent
from mlwarden.agent.monitor_source import NoNewWindows
from mlwarden.agent.policy import load_policy_text
from mlwarden.agent.remedies.base import CRASH_ENV
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.journal import ActionJournal
from mlwarden.store.repository import Store

POLICY = "defaults: {approval: {from_severity_actions: []}}"


# The killed agents are forked from a server process that imported the agent once (per test
# process): a new interpreter per kill would spend its seconds importing. Each still runs in a
# process of its own, with nothing of the test's process (no open database connection), and dies
# by SIGKILL at its step with no clean-up.
FORKS = multiprocessing.get_context("forkserver")
FORKS.set_forkserver_preload(["crash_agent"])


def run_agent(url: str, crash_at: str) -> int:
    """One agent pass in a process of its own, which SIGKILLs itself at step ``crash_at``."""
    process = FORKS.Process(target=one_pass, args=(url, POLICY, crash_at))
    process.start()
    process.join(120)
    assert process.exitcode in (0, -signal.SIGKILL), process.exitcode
    return process.exitcode


def restart_agent(url: str) -> None:
    """One pass of a new agent on a new store over the killed agent's database: all it knows is
    in the database, as after a restart. In this process (a second interpreter would only add
    its seconds of imports): the test process never ran the killed agent, and an error fails
    the test as a non-zero exit would."""
    assert os.environ.get(CRASH_ENV) is None
    with Store(url) as store:
        Agent(store, load_policy_text(POLICY), NoNewWindows()).run_once()


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
    restart_agent(url)
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
    restart_agent(url)
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
    restart_agent(url)
    (action,) = [a for a in ActionJournal(store).list() if a["kind"] == "fallback"]
    assert action["state"] == "failed"
    assert store.get_deployment(MODEL).live_version == deployed["v2"]  # type: ignore[union-attr]
    assert AgentRepo(store).list_incidents()[0]["state"] == "escalated"
