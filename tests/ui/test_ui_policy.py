"""The policy page: the effective configured policy (the file merged over the bundled default),
read-only, and the change history the agent records when it starts with a different policy."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi.testclient import TestClient

from mlwarden.agent.loop import Agent
from mlwarden.agent.policy import load_policy
from mlwarden.agent.policy_history import POLICY_LOADED, policy_history, record_policy
from mlwarden.server import create_app
from mlwarden.settings import Settings
from mlwarden.store import Store


def _client(store: Store, tmp_path: Path, policy: Path | None) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", auth=False, agent_policy=policy)
    return TestClient(create_app(settings, store))


def test_the_page_shows_the_configured_policy_merged_over_the_default(
    store: Store, tmp_path: Path
) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text(
        "defaults:\n  min_confidence: 0.8\n  approval: {always: [rollback]}\n"
        "models:\n  titanic: {mode: advisory}\n"
    )
    with _client(store, tmp_path, file) as client:
        page = client.get("/ui/policy")
    assert page.status_code == 200
    text = page.text
    assert f"The file <code>{file}</code>" in text
    effective = text.split('id="policy-effective">')[1].split("</pre>")[0]
    assert "min_confidence: 0.8" in effective  # from the file
    assert "- rollback" in effective  # merged into the default approval mapping...
    assert "from_severity: critical" in effective  # ... whose other keys stay
    assert "max_actions_per_day: 6" in effective  # untouched defaults are shown too
    assert "Effective policy of <a" in text and ">titanic</a>" in text
    changes = text.split('id="policy-file">')[1].split("</pre>")[0]
    assert "min_confidence: 0.8" in changes and "max_actions_per_day" not in changes
    assert 'id="policy-no-history"' in text
    assert 'method="post"' not in text  # read-only


def test_without_a_file_the_bundled_default_and_a_broken_file_says_where(
    store: Store, tmp_path: Path
) -> None:
    with _client(store, tmp_path, None) as client:
        page = client.get("/ui/policy")
    assert page.status_code == 200 and "The bundled default" in page.text
    broken = tmp_path / "broken.yaml"
    broken.write_text("defaults:\n  min_confidence: high\n")
    with _client(store, tmp_path, broken) as client:
        page = client.get("/ui/policy")
    assert page.status_code == 422
    assert "line 2" in page.text and "min_confidence" in page.text


def test_the_agent_records_each_different_policy_it_starts_with(
    store: Store, tmp_path: Path
) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text("defaults: {min_confidence: 0.8}\n")

    def start_agent() -> None:
        stop = threading.Event()
        agent = Agent(store, load_policy(file))
        agent.run_forever(0.01, stop=stop, on_pass=lambda _: stop.set(), lock_path=tmp_path / "l")

    start_agent()
    start_agent()  # the same policy again: nothing new to record
    assert len(store.audit_entries(action=POLICY_LOADED)) == 1
    file.write_text("defaults: {min_confidence: 0.7, max_actions_per_day: 3}\n")
    start_agent()
    history = policy_history(store)
    assert [h["source"] for h in history] == [str(file)] * 2
    assert history[1]["changes"] is None  # the first one recorded
    assert history[0]["changes"] == [
        ("defaults.max_actions_per_day", 6, 3),
        ("defaults.min_confidence", 0.8, 0.7),
    ]
    assert record_policy(store, load_policy(file)) is None
    assert store.verify_audit() == (True, None)
    with _client(store, tmp_path, file) as client:
        page = client.get("/ui/policy").text
    table = page.split('id="policy-history">')[1]
    assert "<code>defaults.min_confidence</code>: 0.8 → 0.7" in table
    assert "first recorded" in table
