"""The operations service, the one path for changes to a model: a real SQLite store, real
scikit-learn versions, the real server over HTTP and the dashboard's own forms."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from agent_helpers import MODEL, add_version, setup_deployed, train
from fastapi.testclient import TestClient

from empty_sqlite import migrated_sqlite
from mlwarden.agent.background import BackgroundAgent
from mlwarden.agent.guards import rollback_target_healthy
from mlwarden.agent.loop import Agent
from mlwarden.agent.operations.service import Operations
from mlwarden.domain import ActionKind, DeploymentState, Role
from mlwarden.errors import Conflict, NotFound
from mlwarden.server import create_app
from mlwarden.settings import Settings
from mlwarden.store.approvals import Approvals
from mlwarden.store.journal import ActionJournal
from mlwarden.store.repository import Store


def _remote_versions(store: Store, n: int) -> None:
    for i in range(n):
        store.add_version(MODEL, kind="remote", endpoint={"url": f"http://127.0.0.1:9/m{i}"})


def test_deployment_changes_are_revisions_events_and_audit(
    store: Store, deployed: dict[str, Any]
) -> None:
    _remote_versions(store, 1)  # version 3
    alice, bob, ops = (Operations(store, actor=name) for name in ("alice", "bob", "ops"))
    alice.set_fallback(MODEL, 1)
    alice.deploy(MODEL, 2)
    bob.set_canary(MODEL, 3, 0.2)
    bob.set_shadow(MODEL, 1)
    d = ops.disable(MODEL, default_response={"prediction": 0})
    assert (
        d.live_version,
        d.fallback_version,
        d.canary_version,
        d.canary_weight,
        d.shadow_version,
        d.disabled,
    ) == (2, 1, 3, 0.2, 1, True)
    d = ops.undo_revision(MODEL, 2, reason="oops")
    assert d.revision == 8 and d.live_version == 2 and not d.disabled and d.canary_version is None
    ops.enable(MODEL)
    kinds = [e["kind"] for e in store.events(MODEL, limit=20)]
    assert kinds[:7] == ["enable", "undo", "disable", "shadow", "canary", "deploy", "fallback"]
    assert store.audit_entries(action="deployment.undo")[0]["actor"] == "ops"
    assert store.verify_audit() == (True, None)


def test_a_person_rolls_back_to_the_version_that_served_before_unless_it_is_unhealthy(
    store: Store, elec: pd.DataFrame
) -> None:
    setup_deployed(store, elec)
    ops = Operations(store, actor="agent")
    store.add_version(MODEL, kind="remote", endpoint={"url": "http://127.0.0.1:9/m"})
    for version in (3, 3, 1):  # a repeated live version is one stretch of serving
        ops.deploy(MODEL, version)
    d = ops.rollback(MODEL, reason="errors after deploy")
    assert d.live_version == 3
    assert (
        store.events(MODEL, limit=1)[0]["details"] | {"from": 1, "to": 3}
        == (store.events(MODEL, limit=1)[0]["details"])
    )
    store.set_version_health(MODEL, 1, "unhealthy")
    with pytest.raises(Conflict, match=r"version 1 .* is marked unhealthy"):
        ops.rollback(MODEL)
    store.create_model(store.get_model(MODEL).model_copy(update={"name": "fresh"}), actor="t")
    with pytest.raises(NotFound, match="no live version"):
        ops.rollback("fresh")


def _client(store: Store, tmp_path: Path, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(data_dir=tmp_path / "data", **settings), store))


def test_a_rollback_picks_the_same_target_from_the_api_and_from_the_agent(
    store: Store, elec: pd.DataFrame, tmp_path: Path
) -> None:
    """The agent's rule and the API's are one (``deployments.rollback_target``): with a history
    v1, v2, v3 (fallback v1, a canary revision on v3), both go back to v2, not to v1."""
    setup_deployed(store, elec)  # v1, then v2 live with v1 as fallback
    old = elec.iloc[:2000]
    v3 = add_version(store, train(old, max_leaf_nodes=30), old, "healthy")
    store.set_deployment(
        MODEL, DeploymentState(live_version=v3, fallback_version=1), actor="ci", reason="v3"
    )
    store.set_deployment(
        MODEL,
        DeploymentState(live_version=v3, fallback_version=1, canary_version=1, canary_weight=0.1),
        actor="ci",
        reason="canary",
    )
    context = Agent(store)._context(MODEL, None)
    assert context.rollback_target() == 2 and rollback_target_healthy(context) is None
    token = store.create_token("olga", Role.OPERATOR)
    with _client(store, tmp_path, auth=True) as client:
        rolled = client.post(
            f"/v1/models/{MODEL}/deployment/rollback",
            json={"reason": "worse"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["live_version"] == context.rollback_target()
        # and now both refuse a target marked unhealthy: v3 served before v2
        store.set_version_health(MODEL, v3, "unhealthy")
        context = Agent(store)._context(MODEL, None)
        assert context.rollback_target() == v3
        assert "unhealthy" in (rollback_target_healthy(context) or "")
        refused = client.post(
            f"/v1/models/{MODEL}/deployment/rollback",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert refused.status_code == 409 and "unhealthy" in refused.text


def _sign_in(client: TestClient, token: str) -> str:
    """Sign in to the dashboard; returns the session's CSRF token."""
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce is not None
    client.post("/ui/login", data={"token": token, "nonce": nonce.group(1), "next": "/ui/"})
    found = re.search(r'data-csrf="([^"]+)"', client.get("/ui/").text)
    assert found is not None
    return found.group(1)


def _approved_through(via: str, tmp_path: Path, elec: pd.DataFrame) -> dict[str, Any]:
    """A fallback waiting for approval, approved by ``olga`` through the API or the
    dashboard; what the store holds right after, and after two passes of the agent."""
    store = Store(migrated_sqlite(tmp_path / via / "mlwarden.db"))
    setup_deployed(store, elec)
    approval = Approvals(store).request(
        MODEL, ActionKind.FALLBACK, {"to_version": 1}, expiry_minutes=60
    )
    token = store.create_token("olga", Role.OPERATOR)
    with _client(store, tmp_path / via, auth=True) as client:
        if via == "api":
            answered = client.post(
                f"/v1/approvals/{approval}",
                json={"decision": "approve", "reason": "p99 too high"},
                headers={"Authorization": f"Bearer {token}"},
            )
        else:
            csrf = _sign_in(client, token)
            answered = client.post(
                f"/ui/approvals/{approval}/approve",
                data={"reason": "p99 too high", "csrf": csrf},
                follow_redirects=False,
            )
        assert answered.status_code in (200, 303), answered.text
    journal = ActionJournal(store)
    (action,) = journal.list(model=MODEL)
    after_approval = {
        "action": {k: action[k] for k in ("kind", "state", "params", "actor", "approval_id")},
        "revision": store.get_deployment(MODEL).revision,  # type: ignore[union-attr]
        "audit": [
            (e["action"], e["actor"], e["target"])
            for e in reversed(store.audit_entries(limit=50))
            if not e["action"].startswith(("token.", "ui."))  # signing in is no change
        ],
    }
    agent = Agent(store)
    agent.run_once()
    agent.run_once()
    ran = {
        "state": journal.get(action["id"])["state"],
        "done": len(
            [
                e
                for e in store.audit_entries(action="action.done", limit=50)
                if e["target"] == f"{MODEL}/action/{action['id']}"
            ]
        ),
        "revisions": len(store.deployment_history(MODEL)),
        "live": store.get_deployment(MODEL).live_version,  # type: ignore[union-attr]
    }
    store.close()
    return {"after_approval": after_approval, "ran": ran}


def test_api_and_dashboard_approvals_record_the_same_and_the_agent_runs_it_once(
    tmp_path: Path, elec: pd.DataFrame
) -> None:
    api = _approved_through("api", tmp_path, elec)
    ui = _approved_through("ui", tmp_path, elec)
    assert api["after_approval"] == ui["after_approval"]
    recorded = api["after_approval"]
    # recorded, journaled as pending, run by nobody yet: the deployment did not move
    assert recorded["action"]["state"] == "pending" and recorded["action"]["actor"] == "olga"
    assert recorded["revision"] == 2
    assert ("approval.approve", "olga", f"{MODEL}/approval/1") in recorded["audit"]
    assert api["ran"] == ui["ran"] == {"state": "done", "done": 1, "revisions": 3, "live": 1}


def test_an_approved_action_runs_with_the_configured_policy_not_the_bundled_one(
    store: Store, elec: pd.DataFrame, tmp_path: Path
) -> None:
    """A canary approved without a weight takes the configured policy's (0.37), not the
    bundled default's (0.1), whether the server's agent or ``Operations`` runs it."""
    setup_deployed(store, elec)
    policy = tmp_path / "policy.yaml"
    policy.write_text("defaults:\n  retrain:\n    canary_weight: 0.37\n", encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", agent_policy=policy)
    approvals = Approvals(store)
    approval = approvals.request(MODEL, ActionKind.CANARY, {"version": 1}, expiry_minutes=60)
    approved = Operations(store, actor="olga", settings=settings).approve(
        approval, role=Role.OPERATOR, reason="try it"
    )
    assert ActionJournal(store).get(approved["action_id"])["state"] == "pending"
    BackgroundAgent(store, settings).agent.recover()  # the server's agent, as it is made
    row = ActionJournal(store).get(approved["action_id"])
    assert row["state"] == "done" and row["result"]["weight"] == 0.37
    assert store.get_deployment(MODEL).canary_weight == 0.37  # type: ignore[union-attr]
    assert Operations(store, settings=settings).env(MODEL).policy.retrain.canary_weight == 0.37
