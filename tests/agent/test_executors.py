"""Executors on a real store: journaled, idempotent, undoable, failure leaves the deployment."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from agent_helpers import MODEL, Receiver, add_version, send_records, train

from mlwarden.agent.operations.actions import run_action, undo_action
from mlwarden.agent.policy import load_policy_text
from mlwarden.agent.remedies.base import ExecEnv
from mlwarden.domain import ActionKind, DeploymentState
from mlwarden.errors import Conflict, InvalidInput
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.journal import ActionJournal
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
            "format": "mlwarden",
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
    from mlwarden.agent.remedies.alert import SIGNATURE_HEADER, verify_signature

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


def _rfc3339(text: str) -> datetime:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert stamp.tzinfo is not None, text
    return stamp


def test_alert_formats_follow_their_receivers_schemas(
    store: Store, deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each ``alert.format`` of the policy posts the body its receiver documents: Alertmanager's
    webhook payload (version 4), PagerDuty's Events API v2 event, a Slack message with blocks."""
    monkeypatch.setenv("MLWARDEN_PAGERDUTY_ROUTING_KEY", "R0UT1NGKEY0123456789abcdefABCDEF")
    receiver = Receiver()
    incident = AgentRepo(store).create_incident(MODEL, 4, {}, "accuracy fell")
    params = {
        "severity": "critical",
        "title": "elec accuracy fell to 0.61",
        "diagnosis": "concept_drift",
        "rationale": "accuracy 0.61 < 0.78",
        "incident_id": incident,
    }
    bodies: dict[str, dict[str, Any]] = {}
    try:
        for fmt in ("alertmanager", "pagerduty", "slack"):
            env = env_for(
                store, f"defaults: {{alert: {{webhook_url: '{receiver.url}', format: {fmt}}}}}"
            )
            row = run_action(env, env.journal.create(MODEL, ActionKind.ALERT, params))
            assert row["state"] == "done" and row["result"]["format"] == fmt
            bodies[fmt] = receiver.bodies[-1]
    finally:
        receiver.close()

    am = bodies["alertmanager"]  # prometheus.io/docs/alerting/latest/configuration/#webhook_config
    assert set(am) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    assert am["version"] == "4" and am["status"] == "firing" and am["truncatedAlerts"] == 0
    (alert,) = am["alerts"]
    assert set(alert) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }
    assert alert["labels"] == {
        "alertname": "MlwardenAlert",
        "model": MODEL,
        "severity": "critical",
        "diagnosis": "concept_drift",
        "incident": str(incident),
    }
    assert all(
        isinstance(v, str) for v in (*alert["labels"].values(), *alert["annotations"].values())
    )
    assert alert["annotations"]["summary"] == "elec accuracy fell to 0.61"
    assert abs(_rfc3339(alert["startsAt"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"  # still firing, as Alertmanager writes it
    assert am["commonLabels"] == alert["labels"]

    pd_event = bodies["pagerduty"]  # developer.pagerduty.com, Events API v2, "Send an event"
    assert pd_event["routing_key"] == "R0UT1NGKEY0123456789abcdefABCDEF"
    assert pd_event["event_action"] == "trigger"
    assert pd_event["dedup_key"] == f"mlwarden/{MODEL}/incident/{incident}"
    payload = pd_event["payload"]
    assert {"summary", "source", "severity"} <= set(payload)  # the required fields
    assert payload["severity"] == "critical" and payload["source"] == f"mlwarden/{MODEL}"
    assert 0 < len(payload["summary"]) <= 1024
    assert payload["component"] == MODEL and payload["class"] == "concept_drift"
    assert payload["custom_details"]["rationale"] == "accuracy 0.61 < 0.78"
    _rfc3339(payload["timestamp"])

    slack = bodies["slack"]  # api.slack.com, incoming webhooks and Block Kit
    assert "[CRITICAL] elec accuracy fell to 0.61" in slack["text"]
    header, section, context = slack["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "elec accuracy fell to 0.61"},
    }
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert 0 < len(section["fields"]) <= 10
    assert all(f["type"] == "mrkdwn" and len(f["text"]) <= 2000 for f in section["fields"])
    assert "accuracy 0.61 < 0.78" in section["fields"][1]["text"]
    assert context["type"] == "context" and context["elements"][0]["type"] == "mrkdwn"

    # the routing key goes to PagerDuty only: it is not in what mlwarden records
    events = store.events(MODEL, kinds=["alert"])
    assert "R0UT1NGKEY" not in json.dumps(events, default=str)
    assert sorted(e["details"]["format"] for e in events) == ["alertmanager", "pagerduty", "slack"]


def test_pagerduty_alert_without_a_routing_key_says_what_to_set(
    store: Store, deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLWARDEN_PAGERDUTY_ROUTING_KEY", raising=False)
    receiver = Receiver()
    try:
        env = env_for(
            store, f"defaults: {{alert: {{webhook_url: '{receiver.url}', format: pagerduty}}}}"
        )
        row = run_action(env, env.journal.create(MODEL, ActionKind.ALERT, {}))
        assert row["state"] == "failed" and "MLWARDEN_PAGERDUTY_ROUTING_KEY" in row["error"]
        assert receiver.calls == 0
        details = store.events(MODEL, kinds=["alert"])[0]["details"]
        assert details["delivered"] is False and "routing key" in details["outcome"]
    finally:
        receiver.close()
    with pytest.raises(InvalidInput, match="format"):
        load_policy_text("defaults: {alert: {format: opsgenie}}")


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
