"""A running server's detection thresholds come from its policy file: the agent in the server
reads the file again when it changes, and the next window is judged by the new thresholds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from agent_helpers import FEATURES, MODEL, setup_deployed

from mlwarden.agent.policy import PolicyError, load_policy_text
from mlwarden.agent.policy_history import POLICY_LOADED
from mlwarden.monitor.engine import MonitorConfig
from mlwarden.server.app import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.settings import Settings
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store

WINDOW = 50  # the system detector judges windows of 50 records or more
# advisory: the agent proposes and changes nothing, so both windows are served alike
TIGHT = "defaults:\n  mode: advisory\n  detection:\n    latency_slo_ms: 0.000001\n"
LOOSE = (
    "defaults:\n  mode: advisory\n  detection:\n"
    "    latency_slo_ms: null\n    latency_ratio: 1000000000.0\n"
)


def _wait(condition: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _latency_findings(store: Store, window: int) -> list[dict[str, Any]]:
    return [
        f
        for f in AgentRepo(store).findings(MODEL)
        if f["window"] == window and f["kind"] == "latency"
    ]


def test_a_changed_policy_file_changes_the_thresholds_of_the_next_window(
    store: Store, elec: pd.DataFrame, tmp_path: Path
) -> None:
    setup_deployed(store, elec)
    policy = tmp_path / "policy.yaml"
    policy.write_text(TIGHT)
    settings = Settings(
        data_dir=tmp_path,
        window_size=WINDOW,
        reference_size=WINDOW,
        window_settle_s=0,
        agent_interval_s=0.2,
        agent_in_server=True,
        agent_policy=policy,
    )
    rows = [{f: float(elec.iloc[3000 + n][f]) for f in FEATURES} for n in range(2 * WINDOW)]
    repo = AgentRepo(store)
    server = BackgroundServer(create_app(settings, store)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            answer = http.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:WINDOW]})
            assert answer.status_code == 200, answer.text
            _wait(lambda: repo.last_window(MODEL) == 0, "the first window")
            # every answer takes more than a nanosecond: the tight SLO flags the window
            (tight,) = _latency_findings(store, 0)
            assert tight["threshold"] == 1e-6

            loaded = len(store.audit_entries(action=POLICY_LOADED))
            policy.write_text(LOOSE)
            _wait(
                lambda: len(store.audit_entries(action=POLICY_LOADED)) > loaded,
                "the agent to read the changed policy",
            )
            newest = store.audit_entries(limit=1, action=POLICY_LOADED)[0]
            assert newest["details"]["policy"]["defaults"]["detection"]["latency_slo_ms"] is None

            answer = http.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[WINDOW:]})
            assert answer.status_code == 200, answer.text
            _wait(lambda: repo.last_window(MODEL) == 1, "the second window")
    finally:
        server.stop()
    # the same traffic, judged by the reloaded thresholds: no SLO, no latency finding
    assert _latency_findings(store, 1) == []


def test_a_model_override_sets_its_own_detection_and_an_unknown_key_is_a_policy_error() -> None:
    text = (
        "defaults:\n  detection:\n    drift_psi: 0.3\n"
        "models:\n  fraud:\n    detection:\n      latency_slo_ms: 250\n"
    )
    policy = load_policy_text(text)
    fraud, other = (
        policy.for_model("fraud").monitor_config(),
        policy.for_model("x").monitor_config(),
    )
    assert (fraud.drift_psi, fraud.latency_slo_ms) == (0.3, 250)
    assert (other.drift_psi, other.latency_slo_ms) == (0.3, None)
    assert load_policy_text("").defaults.monitor_config() == MonitorConfig()
    # the error points at the misspelt key's own line, and names the key it is near
    with pytest.raises(
        PolicyError,
        match=r"line 3: defaults.detection.drift_pis: unknown key 'drift_pis'; did you mean "
        r"'drift_psi'\?",
    ):
        load_policy_text("defaults:\n  detection:\n    drift_pis: 0.3\n")


def test_a_policy_file_caught_empty_while_it_is_written_is_not_read_until_it_is_whole(
    store: Store, tmp_path: Path
) -> None:
    """An editor or a deploy tool truncates the file, then writes it: a pass between the two
    keeps the policy in use (an empty file read as a policy would be the bundled defaults,
    autonomous mode included), and the next pass reads the whole file."""
    from mlwarden.agent.background import BackgroundAgent

    policy = tmp_path / "policy.yaml"
    policy.write_text("defaults:\n  mode: advisory\n  detection:\n    drift_psi: 0.3\n")
    agent = BackgroundAgent(store, Settings(data_dir=tmp_path, agent_policy=policy))
    assert agent.agent.policy.defaults.mode == "advisory"
    policy.write_text("")  # truncated: the writer has not written yet
    assert agent.reload_policy() is False
    assert agent.agent.policy.defaults.mode == "advisory" and agent.policy_problem is None
    policy.write_text("defaults:\n  mode: advisory\n  detection:\n    drift_psi: 0.25\n")
    assert agent.reload_policy() is True
    assert agent.agent.policy.defaults.monitor_config().drift_psi == 0.25
