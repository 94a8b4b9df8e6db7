"""The agent's policy over HTTP: a running server whose policy file changes into one that does
not validate keeps the policy it had, and says so on /health, GET /v1/policy and the
dashboard's policy page; one model's overrides are read and set with GET/PUT
/v1/policy/models/{name}: validated with the whole file, audited, for admins only."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from api_helpers import ELEC_SPEC, make_settings, role_headers
from fastapi.testclient import TestClient

from mlwarden.agent.policy_history import POLICY_LOADED
from mlwarden.server.app import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.store import Store

VALID = "defaults:\n  mode: advisory\n  detection:\n    drift_psi: 0.3\n"
# a negative threshold and a misspelt key, on lines 4 and 5
INVALID = "defaults:\n  mode: advisory\n  detection:\n    drift_psi: -0.3\n    drift_alfa: 0.1\n"


def _wait(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_running_server_keeps_its_policy_when_the_file_turns_invalid_and_says_why(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(VALID)
    settings = make_settings(
        tmp_path, auth=False, agent_in_server=True, agent_interval_s=0.1, agent_policy=policy
    )
    app = create_app(settings)
    server = BackgroundServer(app).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            health = http.get("/health").json()
            assert health["status"] == "ok"
            assert health["policy"] == {
                "source": str(policy),
                "status": "ok",
                "error": None,
                "problems": [],
            }

            policy.write_text(INVALID)
            _wait(
                lambda: http.get("/health").json()["policy"]["error"] is not None,
                "the agent to read the changed file",
            )
            health = http.get("/health")
            assert health.status_code == 200
            body = health.json()
            assert body["status"] == "degraded: policy file invalid"
            assert body["policy"]["status"] == (
                "invalid file: the policy read before it stays in use"
            )
            assert body["policy"]["problems"] == [
                {
                    "line": 4,
                    "path": "defaults.detection.drift_psi",
                    "message": "Input should be greater than 0, not -0.3",
                },
                {
                    "line": 5,
                    "path": "defaults.detection.drift_alfa",
                    "message": "unknown key 'drift_alfa'; did you mean 'drift_alpha'?",
                },
            ]

            # the API shows the policy in use: the one read before, drift_psi 0.3; a person's
            # undo or approval through the server runs with it too
            operations = app.state.mlwarden.operations("ann")
            assert operations.policy.defaults.monitor_config().drift_psi == 0.3
            current = http.get("/v1/policy").json()
            assert current["problems"] == body["policy"]["problems"]
            assert current["effective"]["defaults"]["detection"]["drift_psi"] == 0.3
            page = http.get("/ui/policy")
            assert page.status_code == 200
            assert 'id="policy-problem"' in page.text
            assert "<code>defaults.detection.drift_alfa</code>" in page.text
            effective = page.text.split('id="policy-effective">')[1].split("</pre>")[0]
            assert "drift_psi: 0.3" in effective

            # fixed: read again, in use, and the error is gone everywhere
            policy.write_text(VALID.replace("0.3", "0.25"))
            _wait(
                lambda: http.get("/health").json()["status"] == "ok",
                "the agent to read the fixed file",
            )
            current = http.get("/v1/policy").json()
            assert current["error"] is None
            assert current["effective"]["defaults"]["detection"]["drift_psi"] == 0.25
            assert 'id="policy-problem"' not in http.get("/ui/policy").text
    finally:
        server.stop()


def test_without_an_agent_inside_the_file_is_read_at_each_request(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(INVALID)
    settings = make_settings(tmp_path, auth=False, agent_policy=policy)
    with TestClient(create_app(settings)) as client:
        body = client.get("/v1/policy").json()
        assert (body["status"], body["effective"]) == ("invalid file", None)
        assert client.get("/health").json()["status"] == "degraded: policy file invalid"
        page = client.get("/ui/policy")
        assert "drift_alfa" in page.text and 'id="policy-effective"' not in page.text
        policy.write_text(VALID)
        assert client.get("/health").json()["status"] == "ok"


def _client(tmp_path: Path, policy: Path | None) -> tuple[TestClient, dict[str, Any], Store]:
    settings = make_settings(
        tmp_path, auth=True, agent_in_server=True, agent_interval_s=3600, agent_policy=policy
    )
    headers = role_headers(settings)
    client = TestClient(create_app(settings))
    return client, headers, Store(settings.resolved_database_url)


def test_a_models_override_is_read_and_set_over_http_by_an_admin_and_audited(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("defaults:\n  mode: advisory\n")
    client, headers, store = _client(tmp_path, policy)
    viewer, operator, admin = headers["viewer"], headers["operator"], headers["admin"]
    url = "/v1/policy/models/elec"
    try:
        with client:
            assert client.post("/v1/models", json=ELEC_SPEC, headers=admin).status_code == 201
            shown = client.get(url, headers=viewer)
            assert shown.status_code == 200
            assert shown.json()["override"] == {}
            assert shown.json()["effective"]["mode"] == "advisory"
            assert client.get(url).status_code == 401

            change = {"mode": "autonomous", "detection": {"drift_psi": 0.4}}
            for who in (viewer, operator):
                assert client.put(url, json=change, headers=who).status_code == 403
            assert "elec" not in policy.read_text()

            loaded = len(store.audit_entries(action=POLICY_LOADED))
            answer = client.put(url, json=change, headers=admin)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["override"] == change
            assert (body["effective"]["mode"], body["effective"]["detection"]["drift_psi"]) == (
                "autonomous",
                0.4,
            )
            assert yaml.safe_load(policy.read_text())["models"] == {"elec": change}
            # the agent inside read the file at once: its policy is the new one, recorded
            assert client.get("/v1/policy", headers=viewer).json()["effective"]["models"] == {
                "elec": body["effective"]
            }
            assert len(store.audit_entries(action=POLICY_LOADED)) == loaded + 1
            (entry,) = store.audit_entries(action="policy.override")
            assert entry["actor"].startswith("bootstrap-admin") and entry["target"] == "elec/policy"
            assert entry["details"]["before"] == {} and entry["details"]["after"] == change

            written = policy.read_text()
            bad = client.put(
                url, json={"detection": {"drift_psi": "high", "min_labels": -1}}, headers=admin
            )
            assert bad.status_code == 422
            assert "models.elec.detection.drift_psi" in bad.json()["error"]
            assert "not 'high'" in bad.json()["error"]
            assert "models.elec.detection.min_labels" in bad.json()["error"]
            assert policy.read_text() == written
            assert client.put(url, json=[1], headers=admin).status_code == 422

            assert client.put(url, json={}, headers=admin).json()["override"] == {}
            assert yaml.safe_load(policy.read_text())["models"] == {}
            assert len(store.audit_entries(action="policy.override")) == 2

            missing = client.put("/v1/policy/models/nope", json={}, headers=admin)
            assert missing.status_code == 404
            assert client.get("/v1/policy/models/nope", headers=viewer).status_code == 404
    finally:
        store.close()


def test_an_override_needs_a_policy_file_to_be_written_to(tmp_path: Path) -> None:
    client, headers, store = _client(tmp_path, None)
    try:
        with client:
            assert (
                client.post("/v1/models", json=ELEC_SPEC, headers=headers["admin"]).status_code
                == 201
            )
            answer = client.put(
                "/v1/policy/models/elec", json={"mode": "advisory"}, headers=headers["admin"]
            )
            assert answer.status_code == 409
            assert "MLWARDEN_AGENT_POLICY" in answer.json()["error"]
            shown = client.get("/v1/policy/models/elec", headers=headers["viewer"]).json()
            assert (shown["source"], shown["override"]) == (None, {})
    finally:
        store.close()
