"""A release compared with the version it replaced, on the same labelled records: a worse one is
blamed and rolled back in its first window; an as-good one, or the agent's own change, is not."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from agent_helpers import (
    FEATURES,
    MODEL,
    Script,
    add_version,
    last_record_key,
    train,
)

from mlwarden.agent.loop import Agent
from mlwarden.agent.policy import load_policy_text
from mlwarden.agent.release_check import latest_release
from mlwarden.clock import utcnow
from mlwarden.domain import DeploymentState
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store


def release(store: Store, estimator: Any, frame: pd.DataFrame, fallback: int) -> int:
    """``estimator`` registered and made live by the release pipeline (not the agent)."""
    number = add_version(store, estimator, frame, "unknown")
    store.set_deployment(
        MODEL,
        DeploymentState(live_version=number, fallback_version=fallback),
        actor="release-pipeline",
        reason="scheduled release",
    )
    return number


def serve(store: Store, frame: pd.DataFrame, version: int, estimator: Any) -> None:
    """``frame``'s rows answered by ``estimator`` (its classes' probabilities recorded, as the
    gateway does), then labelled."""
    probabilities = estimator.predict_proba(frame[FEATURES])
    classes = [str(c) for c in estimator.classes_]
    now = utcnow()
    rows = [
        {
            "id": f"s{index}",
            "model": MODEL,
            "version": version,
            "timestamp": now + timedelta(seconds=i),
            "received_at": now + timedelta(seconds=i),
            "features": {f: float(row[f]) for f in FEATURES},
            "prediction": int(estimator.classes_[int(np.argmax(p))]),
            "scores": dict(zip(classes, map(float, p), strict=True)),
            "latency_ms": 5.0,
        }
        for i, ((index, row), p) in enumerate(zip(frame.iterrows(), probabilities, strict=True))
    ]
    store.insert_records(rows)
    store.add_feedback(MODEL, [(f"s{i}", int(t)) for i, t in frame["target"].items()])


def first_window(store: Store) -> tuple[Agent, AgentRepo]:
    script = Script()
    script.add(MODEL, end=last_record_key(store), accuracy=0.7)
    agent = Agent(store, load_policy_text("defaults: {}"), script)
    agent.run_once()
    return agent, AgentRepo(store)


def test_a_release_worse_than_the_version_before_is_rolled_back_in_its_first_window(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    old = elec.iloc[:2000]
    shuffled = old.assign(target=np.random.default_rng(0).permutation(old["target"].to_numpy()))
    bad = train(shuffled)
    v3 = release(store, bad, old, deployed["v1"])
    serve(store, elec.iloc[2000:2600], v3, bad)
    agent, repo = first_window(store)
    (window,) = repo.recent_windows(MODEL, 5)
    (found,) = [f for f in window.findings if f.detector == "release.versus_previous"]
    seen = found.evidence["versus_previous"]
    assert (seen["version"], seen["previous"], seen["labelled"]) == (v3, deployed["v2"], 600)
    assert seen["z"] > 3 and seen["metric_new"] <= seen["metric_old"]
    # one window, no persistence to wait for: the release is blamed and rolled back at once
    incident = repo.list_incidents(MODEL)[0]
    assert incident["diagnosis"] == "regression_after_deploy"
    (rollback,) = [a for a in agent.journal.list(MODEL) if a["kind"] == "rollback"]
    assert rollback["params"]["to_version"] == deployed["v2"]
    assert store.get_deployment(MODEL).live_version == deployed["v2"]  # type: ignore[union-attr]


def test_a_release_as_good_as_the_version_before_is_not_blamed(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    # the same recipe on more of the same period: a routine release, no worse than v2
    newer = pd.concat([elec.iloc[:2000], elec.iloc[2600:4000]])
    good = train(newer)
    v3 = release(store, good, newer, deployed["v1"])
    serve(store, elec.iloc[2000:2600], v3, good)
    agent, repo = first_window(store)
    (window,) = repo.recent_windows(MODEL, 5)
    assert not window.findings
    assert not repo.list_incidents(MODEL) and not agent.journal.list(MODEL)
    assert store.get_deployment(MODEL).live_version == v3  # type: ignore[union-attr]


def test_the_agents_own_changes_are_not_releases_to_judge(store: Store, deployed: dict) -> None:
    store.set_deployment(
        MODEL,
        DeploymentState(live_version=deployed["v1"], fallback_version=deployed["v1"]),
        actor="agent",
        reason="[action 1] fallback",
    )
    history = store.deployment_history(MODEL, limit=10)
    assert latest_release(history, "agent") is None
    # the test's own release of v2 over v1, seen from an agent of another name
    assert latest_release(history, "someone-else") is not None
