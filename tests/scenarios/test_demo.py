"""`mlwarden demo` for real: the server, live HTTP traffic, the agent reacting to the faults."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from mlwarden.scenarios.demo import Demo
from mlwarden.scenarios.spec import load_scenario
from mlwarden.server.background import free_port, serve_in_background
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store


def _quality_decision(store: Store) -> dict | None:
    """The agent's first decision on the null burst's incident (None before it decides)."""
    repo = AgentRepo(store)
    for incident in repo.list_incidents(model="demo"):
        if incident["scope"] == "quality":
            decisions = repo.get_incident(incident["id"])["decisions"]
            if decisions:
                return decisions[0]
    return None


@pytest.mark.slow
def test_the_demo_detects_the_null_burst_and_decides_on_evidence(tmp_path: Path) -> None:
    port = free_port()
    lines: list[str] = []
    demo = Demo(
        load_scenario("demo"),
        tmp_path / "demo",
        serve=serve_in_background,
        port=port,
        speed=3.0,
        say=lines.append,
    )
    runner = threading.Thread(target=demo.run, kwargs={"duration_s": 400}, daemon=True)
    runner.start()
    deadline = time.monotonic() + 400
    decision = None
    try:
        while time.monotonic() < deadline and decision is None and runner.is_alive():
            time.sleep(2)
            db = tmp_path / "demo" / "mlwarden.db"
            if not db.exists():
                continue
            with Store(f"sqlite:///{db}", migrate=False) as store:
                if "demo" not in store.model_names():
                    continue
                decision = _quality_decision(store)
        # the dashboard and the API are up while the demo runs
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert health["status"] == "ok"
        page = httpx.get(f"http://127.0.0.1:{port}/ui/", timeout=30, follow_redirects=True)
        assert page.status_code == 200 and "demo" in page.text
    finally:
        demo.stop()
        runner.join(60)
    assert any(f"http://127.0.0.1:{port}/ui/" in line for line in lines)
    assert decision is not None, "the agent never decided about the null burst"
    # a repair of the inputs or a fallback, or a kept champion whose weighing showed every
    # remedy serving worse; a remedy only where the evidence does not find it worse
    assert decision["action"] in ("repair", "fallback", "alert"), decision
    if "evidence" in decision["params"]:
        scores = {s["option"]: s["value"] for s in decision["params"]["evidence"]["scores"]}
        if decision["action"] == "alert":
            assert max(v for k, v in scores.items() if k != "keep") <= scores["keep"] + 0.005
        else:
            assert scores[decision["action"]] >= scores["keep"] - 0.005, scores
    assert demo.status.sent > 2_500  # past the start of the null burst
    with Store(f"sqlite:///{tmp_path / 'demo' / 'mlwarden.db'}", migrate=False) as store:
        kinds = {e["kind"] for e in store.events("demo", limit=500)}
        assert store.count_records("demo") >= demo.status.sent  # nothing lost on shutdown
    assert kinds  # deploys and the agent's deployment changes are on the model's timeline
