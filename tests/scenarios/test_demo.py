"""`mlwarden demo` for real: the server, live HTTP traffic, the agent reacting to the faults."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from mlwarden.agent.journal import Journal
from mlwarden.api.server import free_port
from mlwarden.scenarios.demo import Demo
from mlwarden.scenarios.spec import load_scenario
from mlwarden.store.repository import Store


@pytest.mark.slow
def test_the_demo_detects_the_null_burst_and_falls_back(tmp_path: Path) -> None:
    port = free_port()
    lines: list[str] = []
    demo = Demo(load_scenario("demo"), tmp_path / "demo", port=port, speed=3.0, say=lines.append)
    runner = threading.Thread(target=demo.run, kwargs={"duration_s": 400}, daemon=True)
    runner.start()
    deadline = time.monotonic() + 400
    fallback = None
    try:
        while time.monotonic() < deadline and fallback is None and runner.is_alive():
            time.sleep(2)
            db = tmp_path / "demo" / "mlwarden.db"
            if not db.exists():
                continue
            with Store(f"sqlite:///{db}", migrate=False) as store:
                if "demo" not in store.model_names():
                    continue
                actions = Journal(store).list("demo")
                fallback = next((a for a in actions if a["kind"] == "fallback"), None)
        # the dashboard and the API are up while the demo runs
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert health["status"] == "ok"
        page = httpx.get(f"http://127.0.0.1:{port}/ui/", timeout=30, follow_redirects=True)
        assert page.status_code == 200 and "demo" in page.text
    finally:
        demo.stop()
        runner.join(60)
    assert any(f"http://127.0.0.1:{port}/ui/" in line for line in lines)
    assert fallback is not None, "the agent never fell back during the null burst"
    assert demo.status.sent > 2_500  # past the start of the null burst
    with Store(f"sqlite:///{tmp_path / 'demo' / 'mlwarden.db'}", migrate=False) as store:
        kinds = {e["kind"] for e in store.events("demo", limit=500)}
        assert store.count_records("demo") >= demo.status.sent  # nothing lost on shutdown
    assert kinds  # deploys and the agent's deployment changes are on the model's timeline
