"""Executors on a real store: journaled, idempotent, undoable, failure leaves the deployment."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from agent_helpers import MODEL, Receiver, add_version, send_records, train

from mlwarden.agent.executors import run_action, undo_action
from mlwarden.agent.executors.base import ExecEnv
from mlwarden.agent.journal import ActionJournal
from mlwarden.agent.policy import load_policy_text
from mlwarden.domain import ActionKind, DeploymentState
from mlwarden.errors import Conflict
from mlwarden.store.repository import Store


def env_for(store: Store, policy_yaml: str = "defaults: {}") -> ExecEnv:
    return ExecEnv(store, ActionJournal(store), load_policy_text(policy_yaml).for_model(MODEL))


def test_rollback_is_journaled_with_revisions_and_undoable(
    store: Store, deployed: dict[str, Any]
) -> None:
    env = env_for(store)
    action_id = env.journal.create(MODEL, ActionKind.ROLLBACK, {"to_version": deployed["v1"]})
    assert env.journal.get(action_id)["state"] == "pending"
    row = run_action(env, action_id)
    assert row["state"] == "done"
    assert (row["before_revision"], row["after_revision"]) == (2, 3)
    dep = store.get_deployment(MODEL)
    assert dep is not None and dep.live_version == deployed["v1"]
    assert store.get_version(MODEL, deployed["v2"]).health == "unhealthy"
    # running it again does nothing
    assert run_action(env, action_id)["after_revision"] == 3
    assert len(store.deployment_history(MODEL)) == 3
    undone = undo_action(env, action_id)
    assert undone["state"] == "undone"
    dep = store.get_deployment(MODEL)
    assert dep is not None and dep.live_version == deployed["v2"] and dep.revision == 4
    actions = [e["action"] for e in store.audit_entries(limit=20)]
    assert {"action.journal", "action.done", "action.undo"} <= set(actions)
    assert store.verify_audit() == (True, None)


def test_rollback_refuses_unhealthy_target_and_leaves_deployment(
    store: Store, deployed: dict[str, Any]
) -> None:
    store.set_version_health(MODEL, deployed["v1"], "unhealthy")
    env = env_for(store)
    action_id = env.journal.create(MODEL, ActionKind.ROLLBACK, {"to_version": deployed["v1"]})
    row = run_action(env, action_id)
    assert row["state"] == "failed" and "unhealthy" in row["error"]
    assert store.get_deployment(MODEL).revision == 2  # type: ignore[union-attr]


def test_failed_multi_step_action_restores_the_deployment(
    store: Store, deployed: dict[str, Any]
) -> None:
    env = env_for(store)
    # promote without validation evidence is refused; fallback to a non-fallback version too
    promote = env.journal.create(MODEL, ActionKind.PROMOTE, {"version": deployed["v1"]})
    assert run_action(env, promote)["state"] == "failed"
    fallback = env.journal.create(MODEL, ActionKind.FALLBACK, {"to_version": deployed["v2"]})
    assert run_action(env, fallback)["state"] == "failed"
    assert store.get_deployment(MODEL).revision == 2  # type: ignore[union-attr]


def test_undo_reverts_only_what_the_action_changed(store: Store, deployed: dict[str, Any]) -> None:
    """A later, unrelated change survives the undo: undoing the fallback while the model is
    disabled puts the live version back and leaves it disabled."""
    env = env_for(store)
    fb = run_action(
        env, env.journal.create(MODEL, ActionKind.FALLBACK, {"to_version": deployed["v1"]})
    )
    assert store.get_deployment(MODEL).live_version == deployed["v1"]  # type: ignore[union-attr]
    off = run_action(env, env.journal.create(MODEL, ActionKind.DISABLE, {}))
    undo_action(env, fb["id"])
    dep = store.get_deployment(MODEL)
    assert dep is not None and dep.disabled and dep.live_version == deployed["v2"]
    assert dep.shadow_version is None  # the fallback's champion shadow went with it
    undo_action(env, off["id"])
    dep = store.get_deployment(MODEL)
    assert dep is not None and not dep.disabled and dep.live_version == deployed["v2"]


def test_undo_refuses_to_override_a_later_change_of_the_same_setting(
    store: Store, deployed: dict[str, Any], elec: pd.DataFrame
) -> None:
    """A release deployed over the agent's fallback: a plain undo is refused, ``keep_later``
    (the agent withdrawing its remedy) keeps the release, ``force`` puts the old version back."""
    env = env_for(store)
    old = elec.iloc[:2000]
    release = add_version(store, train(old, min_samples_leaf=5), old, "unknown")
    for resolve, expected in (("keep_later", release), ("force", deployed["v2"])):
        fb = run_action(
            env, env.journal.create(MODEL, ActionKind.FALLBACK, {"to_version": deployed["v1"]})
        )
        store.set_deployment(
            MODEL,
            DeploymentState(live_version=release, fallback_version=deployed["v1"]),
            actor="release-pipeline",
            reason="release",
        )
        with pytest.raises(Conflict, match="live_version"):
            undo_action(env, fb["id"])
        assert undo_action(env, fb["id"], **{resolve: True})["state"] == "undone"
        dep = store.get_deployment(MODEL)
        assert dep is not None and dep.live_version == expected
        store.set_deployment(  # as the fixture left it, for the second round
            MODEL,
            DeploymentState(live_version=deployed["v2"], fallback_version=deployed["v1"]),
            actor="test",
            reason="reset",
        )


def test_alert_webhook_retries_with_backoff(store: Store, deployed: dict[str, Any]) -> None:
    receiver = Receiver(fail=2)
    try:
        env = env_for(
            store, f"defaults: {{alert: {{webhook_url: '{receiver.url}', backoff_s: 0.01}}}}"
        )
        params = {"severity": "high", "diagnosis": "latency_or_errors", "rationale": "p99 up"}
        row = run_action(env, env.journal.create(MODEL, ActionKind.ALERT, params))
        assert row["state"] == "done"
        host = receiver.url.split("/")[2]  # the receiver's host:port, never its path
        assert row["result"] == {
            "delivered": True,
            "webhook": True,
            "destination": f"http://{host}",
            "status": 200,
            "attempts": 3,
            "outcome": f"delivered to http://{host} (HTTP 200, 3 attempt(s))",
        }
        body = receiver.bodies[0]
        assert body["model"] == MODEL and body["severity"] == "high"
        assert "[HIGH]" in body["text"] and "p99 up" in body["text"]
        assert store.events(MODEL, kinds=["alert"])[0]["details"]["delivered"] is True
    finally:
        receiver.close()


def test_alert_webhook_is_signed_with_the_configured_secret(
    store: Store, deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlwarden.agent.executors.alert import SIGNATURE_HEADER, verify_signature

    receiver = Receiver()
    policy = f"defaults: {{alert: {{webhook_url: '{receiver.url}'}}}}"
    try:
        unsigned = env_for(store, policy)
        run_action(unsigned, unsigned.journal.create(MODEL, ActionKind.ALERT, {}))
        monkeypatch.setenv("MLWARDEN_WEBHOOK_SECRET", "hook-secret")
        signed = env_for(store, policy)
        row = run_action(signed, signed.journal.create(MODEL, ActionKind.ALERT, {}))
        assert row["state"] == "done"
        (_plain, plain_headers), (body, headers) = receiver.raw
        assert SIGNATURE_HEADER.lower() not in {k.lower() for k in plain_headers}
        header = {k.lower(): v for k, v in headers.items()}[SIGNATURE_HEADER.lower()]
        assert verify_signature("hook-secret", body, header)
        assert not verify_signature("another-secret", body, header)
        assert not verify_signature("hook-secret", body.replace(b"mlwarden", b"attacker"), header)
        # the secret is not written anywhere the alert is recorded
        assert "hook-secret" not in json.dumps(store.events(MODEL, kinds=["alert"]), default=str)
    finally:
        receiver.close()


def test_alert_that_never_arrives_fails_but_is_logged(
    store: Store, deployed: dict[str, Any]
) -> None:
    receiver = Receiver(fail=100)
    try:
        env = env_for(
            store,
            f"defaults: {{alert: {{webhook_url: '{receiver.url}', retries: 2, backoff_s: 0.01}}}}",
        )
        row = run_action(env, env.journal.create(MODEL, ActionKind.ALERT, {}))
        assert row["state"] == "failed" and "after 3 attempt(s)" in row["error"]
        assert receiver.calls == 3
        details = store.events(MODEL, kinds=["alert"])[0]["details"]
        assert details["delivered"] is False
        assert (
            details["outcome"]
            == f"not delivered: http://{receiver.url.split('/')[2]} did not accept it"
        )
    finally:
        receiver.close()


def test_retrain_on_concept_drift_validates_and_stages_a_canary(
    store: Store, deployed: dict[str, Any], elec: pd.DataFrame
) -> None:
    send_records(store, elec.iloc[30000:31500], version=deployed["v2"])
    env = env_for(store)
    row = run_action(env, env.journal.create(MODEL, ActionKind.RETRAIN, {}))
    assert row["state"] == "done", row["error"]
    result = row["result"]
    assert result["candidate_score"] > result["champion_score"]
    assert result["holdout_rows"] == 450 and result["reference_rows"] == 300
    # validated on the newest 450, then fitted again on every labelled record and the reference
    assert result["train_rows"] == 300 + 1500
    # promotion waits for the canary's own production records (agent.canary)
    assert result["promoted"] is None and result["watching"] == "canary"
    dep = store.get_deployment(MODEL)
    assert dep is not None and dep.live_version == deployed["v2"]
    assert dep.canary_version == result["candidate_version"] == 3 and dep.canary_weight == 0.1
    assert store.deployment_history(MODEL)[0].reason.startswith(f"[action {row['id']}] canary")


def test_retrain_with_direct_rollout_promotes_at_once(
    store: Store, deployed: dict[str, Any], elec: pd.DataFrame
) -> None:
    send_records(store, elec.iloc[30000:31500], version=deployed["v2"])
    env = env_for(store, "defaults: {retrain: {rollout: direct}}")
    row = run_action(env, env.journal.create(MODEL, ActionKind.RETRAIN, {}))
    assert row["result"]["promoted"] is True
    dep = store.get_deployment(MODEL)
    assert dep is not None and dep.live_version == row["result"]["candidate_version"] == 3
    assert store.deployment_history(MODEL)[0].reason.startswith(f"[action {row['id']}] promote")


def test_retrain_discards_a_candidate_that_is_not_better(
    store: Store, deployed: dict[str, Any], elec: pd.DataFrame
) -> None:
    send_records(store, elec.iloc[30000:31500], version=deployed["v2"])
    env = env_for(store, "defaults: {retrain: {min_improvement: 0.5}}")
    row = run_action(env, env.journal.create(MODEL, ActionKind.RETRAIN, {}))
    assert row["state"] == "done"
    assert row["result"]["promoted"] is False
    assert "not better than the champion" in row["result"]["discarded"]
    assert store.get_deployment(MODEL).revision == 2  # type: ignore[union-attr]
    assert [v.number for v in store.list_versions(MODEL)] == [1, 2]


def test_retrain_without_enough_labels_fails_cleanly(
    store: Store, deployed: dict[str, Any], elec: pd.DataFrame
) -> None:
    send_records(store, elec.iloc[30000:30100], version=deployed["v2"])
    env = env_for(store)
    row = run_action(env, env.journal.create(MODEL, ActionKind.RETRAIN, {}))
    assert row["state"] == "failed" and "200 needed" in row["error"]
    assert store.get_deployment(MODEL).revision == 2  # type: ignore[union-attr]
