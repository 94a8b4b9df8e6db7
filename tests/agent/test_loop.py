"""The agent loop on a real store, a real model and real records: decision table rows end to end,
verification (resolve, revert and escalate), approvals, memory."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from agent_helpers import (
    FEATURES,
    MODEL,
    Receiver,
    Script,
    add_version,
    deploy_bad_version,
    finding,
    send_records,
    train,
    window_accuracy,
)

from mlwarden.agent.loop import Agent
from mlwarden.agent.policy import load_policy_text
from mlwarden.clock import utcnow
from mlwarden.domain import DeploymentState, Role
from mlwarden.errors import Conflict, Forbidden
from mlwarden.store.approvals import Approvals
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store


def agent_for(store: Store, script: Script, policy: str = "defaults: {}") -> Agent:
    return Agent(store, load_policy_text(policy), script)


def remedies(store: Store) -> list[dict[str, Any]]:
    return [a for a in Agent(store, source=Script()).journal.list() if a["kind"] != "alert"]


def clean_windows(script: Script, count: int, accuracy: float = 0.8) -> None:
    for _ in range(count):
        script.add(MODEL, accuracy=accuracy)


def test_one_noisy_window_is_dismissed_without_action(store: Store, deployed: dict) -> None:
    script = Script()
    agent = agent_for(store, script)
    clean_windows(script, 3)
    agent.run_once()
    script.add(MODEL, [finding("data_drift", 6, ["nswprice"])], accuracy=0.8)
    agent.run_once()
    incident = AgentRepo(store).list_incidents()[0]
    assert incident["state"] == "open"
    for _ in range(5):
        script.add(MODEL, accuracy=0.8)
        agent.run_once()
    incident = AgentRepo(store).list_incidents()[0]
    assert incident["state"] == "dismissed" and incident["diagnosis"] == "noise"
    assert remedies(store) == []
    assert store.get_deployment(MODEL).revision == 2  # type: ignore[union-attr]


def test_an_alerted_failure_that_fades_is_resolved_not_called_noise(
    store: Store, deployed: dict, receiver: Receiver
) -> None:
    script = Script()
    agent = agent_for(store, script, f"defaults: {{alert: {{webhook_url: '{receiver.url}'}}}}")
    clean_windows(script, 3)
    agent.run_once()
    for _ in range(3):  # persistent input drift, performance holding: the table says alert
        script.add(MODEL, [finding("data_drift", 6, ["nswprice"])], accuracy=0.8)
        agent.run_once()
    repo = AgentRepo(store)
    incident = repo.list_incidents()[0]
    assert incident["diagnosis"] == "covariate_drift_stable" and len(receiver.bodies) == 1
    # it fades: flagged now and then, then not at all
    for flagged in (True, False, True, False, False, False, False, False, False, False):
        findings = [finding("data_drift", 6, ["nswprice"])] if flagged else []
        script.add(MODEL, findings, accuracy=0.8)
        agent.run_once()
        state = repo.get_incident(incident["id"])["state"]
        assert state != "dismissed"
    incident = repo.get_incident(incident["id"])
    assert incident["state"] == "resolved"
    assert incident["diagnosis"] == "covariate_drift_stable"  # what people were told stands
    assert incident["timeline"][-1]["text"] == "no finding in the last 5 windows"


def test_null_burst_falls_back_never_retrains_then_reverts(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    """Real records with a burst of nulls: plenty of labels, performance down, yet no retrain."""
    recent = elec.iloc[30000:31500].copy()
    broken = recent.copy()
    broken.loc[broken.index[:700], ["nswprice", "vicprice"]] = np.nan
    send_records(store, broken, version=deployed["v2"])
    null_rate = float(broken["nswprice"].isna().mean())
    script = Script()
    agent = agent_for(store, script)
    clean_windows(script, 3)
    agent.run_once()
    for _ in range(3):
        script.add(
            MODEL,
            [
                finding("data_quality", 8, ["nswprice", "vicprice"], traffic_share=null_rate),
                finding("concept_drift", 3, performance_drop=0.2),
            ],
            accuracy=0.6,
            null_rate=null_rate,
        )
        agent.run_once()
    kinds = [a["kind"] for a in remedies(store)]
    assert kinds == ["fallback"], kinds
    assert "retrain" not in kinds
    dep = store.get_deployment(MODEL)
    assert dep is not None and dep.live_version == deployed["v1"]
    by_scope = {i["scope"]: i for i in AgentRepo(store).list_incidents()}
    incident = by_scope["quality"]
    assert incident["diagnosis"] == "data_quality" and incident["state"] == "verifying"
    # the drop the nulls caused is an incident of its own that waits for the pipeline's
    waiting = AgentRepo(store).get_incident(by_scope["performance"]["id"])
    assert waiting["state"] == "open" and not waiting["actions"]
    # quality is back: the fallback is reverted and the incident resolved
    clean_windows(script, 2)
    agent.run_once()
    incident = AgentRepo(store).get_incident(incident["id"])
    assert incident["state"] == "resolved"
    assert incident["actions"][0]["state"] == "undone"
    assert store.get_deployment(MODEL).live_version == deployed["v2"]  # type: ignore[union-attr]
    assert "retrain" not in [a["kind"] for a in remedies(store)]  # never on the broken windows


def test_bad_version_deploy_is_rolled_back_and_verified(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    v3, bad = deploy_bad_version(store, elec, deployed["v1"])
    recent = elec.iloc[2000:2600]
    script = Script()
    agent = agent_for(store, script)
    for _ in range(3):
        script.add(
            MODEL,
            [finding("concept_drift", 5, performance_drop=round(0.8 - bad, 3))],
            accuracy=bad,
        )
        agent.run_once()
    (rollback,) = remedies(store)
    assert rollback["kind"] == "rollback" and rollback["params"] == {"to_version": deployed["v2"]}
    assert store.get_deployment(MODEL).live_version == deployed["v2"]  # type: ignore[union-attr]
    assert store.get_version(MODEL, v3).health == "unhealthy"
    good = window_accuracy(store, recent)
    assert good > bad
    incident = AgentRepo(store).list_incidents()[0]
    assert incident["diagnosis"] == "regression_after_deploy"
    assert "went live" in incident["decisions"][0]["rationale"] if "decisions" in incident else True
    for _ in range(2):
        script.add(MODEL, accuracy=good)
        agent.run_once()
    incident = AgentRepo(store).get_incident(incident["id"])
    assert incident["state"] == "resolved"
    assert incident["verifications"][0]["verdict"] == "recovered"
    assert store.get_version(MODEL, deployed["v2"]).health == "healthy"


def _serve(store: Store, version: int, rows: pd.DataFrame, served_by: str, prefix: str) -> float:
    """Record ``version``'s real answers to ``rows`` as served by ``served_by``, with labels;
    returns their accuracy."""
    from mlwarden.agent.remedies.retrain import load_estimator

    estimator = load_estimator(store.load_artifact(MODEL, version))
    predictions = estimator.predict(rows[FEATURES])
    send_records(
        store,
        rows,
        version=version,
        start=utcnow(),
        prefix=prefix,
        predictions=predictions,
        served_by=served_by,
    )
    return float(np.mean(predictions == rows["target"].to_numpy()))


def _retrain_staged(store: Store, deployed: dict, elec: pd.DataFrame) -> tuple[Agent, Script]:
    """A concept drift, an approved retrain, and its candidate staged as a 10% canary."""
    recent = elec.iloc[30000:31500]
    send_records(store, recent, version=deployed["v2"])
    before = window_accuracy(store, elec.iloc[31500:32000])
    script = Script()
    agent = agent_for(store, script)
    clean_windows(script, 3, accuracy=0.86)
    agent.run_once()
    for _ in range(3):
        script.add(
            MODEL,
            [finding("concept_drift", 3, performance_drop=round(0.86 - before, 3))],
            accuracy=before,
        )
        agent.run_once()
    # a drop this large is critical: the retrain waits for an operator
    assert remedies(store) == []
    (request,) = Approvals(store).list(state="pending")
    assert request["action"] == "retrain"
    Approvals(store).approve(request["id"], actor="alice", role=Role.OPERATOR, reason="retrain")
    agent.run_once()
    (retrain,) = remedies(store)
    assert retrain["kind"] == "retrain" and retrain["state"] == "done", retrain["error"]
    assert retrain["result"]["watching"] == "canary"
    deployment = store.get_deployment(MODEL)
    assert deployment is not None and deployment.live_version == deployed["v2"]
    assert deployment.canary_version == retrain["result"]["candidate_version"]
    return agent, script


def test_concept_drift_retrains_canaries_promotes_and_resolves(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    agent, script = _retrain_staged(store, deployed, elec)
    candidate = store.get_deployment(MODEL).canary_version  # type: ignore[union-attr]
    # not enough canary evidence yet: the candidate stays a canary
    script.add(MODEL, accuracy=0.8)
    agent.run_once()
    assert store.get_deployment(MODEL).live_version == deployed["v2"]  # type: ignore[union-attr]
    # the canary's answers on the drifted stream, and the champion's in the same period
    canary_accuracy = _serve(store, candidate, elec.iloc[31500:31800], "canary", "c")
    champion_accuracy = _serve(store, deployed["v2"], elec.iloc[31800:33300], "live", "l")
    assert canary_accuracy > champion_accuracy
    script.add(MODEL, accuracy=0.86)
    agent.run_once()
    assert store.get_deployment(MODEL).live_version == candidate  # type: ignore[union-attr]
    (promote,) = [a for a in remedies(store) if a["kind"] == "promote"]
    assert promote["state"] == "done" and promote["params"]["version"] == candidate
    repo = AgentRepo(store)
    incident = repo.get_incident(repo.list_incidents()[0]["id"])
    assert incident["verifications"][0]["verdict"] == "canary_passed"
    # both versions judged on every labelled request, the canary's 300 and the champion's 1500
    assert "on the same 1800 labelled requests" in incident["verifications"][0]["details"]
    for _ in range(2):
        script.add(MODEL, accuracy=0.86)
        agent.run_once()
    incident = AgentRepo(store).get_incident(incident["id"])
    assert incident["state"] == "resolved"
    assert [v["verdict"] for v in incident["verifications"]] == ["canary_passed", "recovered"]
    decision = incident["decisions"][0]
    assert decision["action"] == "retrain" and "performance dropped" in decision["rationale"]


def test_a_promotion_that_does_not_recover_takes_the_candidate_out_entirely(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    agent, script = _retrain_staged(store, deployed, elec)
    candidate = store.get_deployment(MODEL).canary_version  # type: ignore[union-attr]
    _serve(store, candidate, elec.iloc[31500:31800], "canary", "c")
    _serve(store, deployed["v2"], elec.iloc[31800:33300], "live", "l")
    script.add(MODEL, accuracy=0.86)
    agent.run_once()
    assert store.get_deployment(MODEL).live_version == candidate  # type: ignore[union-attr]
    for _ in range(2):  # after the promotion accuracy stays far under the 0.86 baseline
        script.add(MODEL, accuracy=0.6)
        agent.run_once()
    deployment = store.get_deployment(MODEL)
    assert deployment is not None and deployment.live_version == deployed["v2"]
    # not back to the canary stage: the unhealthy candidate serves no traffic at all
    assert deployment.canary_version is None and deployment.canary_weight == 0.0
    assert store.get_version(MODEL, candidate).health == "unhealthy"
    states = {a["kind"]: a["state"] for a in remedies(store)}
    assert states == {"retrain": "undone", "promote": "undone"}
    repo = AgentRepo(store)
    incident = repo.get_incident(repo.list_incidents()[0]["id"])
    assert incident["state"] == "escalated"
    assert [v["verdict"] for v in incident["verifications"]] == ["canary_passed", "not_recovered"]


def test_a_canary_worse_than_the_champion_is_removed_and_escalated(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    agent, script = _retrain_staged(store, deployed, elec)
    candidate = store.get_deployment(MODEL).canary_version  # type: ignore[union-attr]
    # whatever the offline validation said, production proves the champion right on every
    # request (the labels are its answers): on the same requests the candidate does worse
    from mlwarden.agent.remedies.retrain import load_estimator

    champion = load_estimator(store.load_artifact(MODEL, deployed["v2"]))

    def as_the_champion_says(rows: pd.DataFrame) -> pd.DataFrame:
        return rows.assign(target=champion.predict(rows[FEATURES]))

    _serve(store, candidate, as_the_champion_says(elec.iloc[31500:31800]), "canary", "c")
    _serve(store, deployed["v2"], as_the_champion_says(elec.iloc[31800:32300]), "live", "l")
    script.add(MODEL, accuracy=0.86)
    agent.run_once()
    deployment = store.get_deployment(MODEL)
    assert deployment is not None and deployment.canary_version is None
    assert deployment.live_version == deployed["v2"]
    assert store.get_version(MODEL, candidate).health == "unhealthy"
    assert not [a for a in remedies(store) if a["kind"] == "promote"]
    repo = AgentRepo(store)
    incident = repo.get_incident(repo.list_incidents()[0]["id"])
    assert incident["state"] == "escalated"
    assert incident["verifications"][0]["verdict"] == "canary_failed"
    assert "worse than the tolerance allows" in incident["verifications"][0]["details"]


def test_failed_verification_reverts_and_escalates_with_the_story(
    store: Store, deployed: dict, receiver: Receiver
) -> None:
    script = Script()
    agent = agent_for(store, script, f"defaults: {{alert: {{webhook_url: '{receiver.url}'}}}}")
    clean_windows(script, 3)
    agent.run_once()
    for _ in range(3):
        script.add(MODEL, [finding("latency", 5)], latency_p99=900.0)
        agent.run_once()
    (fallback,) = remedies(store)
    assert fallback["kind"] == "fallback"
    for _ in range(2):  # latency stays high on the fallback too
        script.add(MODEL, [finding("latency", 5)], latency_p99=950.0)
        agent.run_once()
    incident = AgentRepo(store).get_incident(AgentRepo(store).list_incidents()[0]["id"])
    assert incident["state"] == "escalated"
    assert incident["verifications"][0]["verdict"] == "not_recovered"
    assert AgentRepo(store).get_incident(incident["id"])["actions"][0]["state"] == "undone"
    assert store.get_deployment(MODEL).live_version == deployed["v2"]  # type: ignore[union-attr]
    escalation = receiver.bodies[-1]
    assert "escalated" in escalation["title"]
    story = escalation["details"]["story"]
    assert "opened" in story and "decision" in story and "verifying" in story
    assert "still shows latency" in escalation["details"]["rationale"]


def test_advisory_mode_waits_for_an_operator(store: Store, deployed: dict) -> None:
    script = Script()
    agent = agent_for(store, script, "defaults: {mode: advisory}")
    for _ in range(3):
        script.add(MODEL, [finding("latency", 5)])
        agent.run_once()
    assert remedies(store) == []
    approvals = Approvals(store)
    (request,) = approvals.list(state="pending")
    assert request["action"] == "fallback"
    with pytest.raises(Forbidden):
        approvals.approve(request["id"], actor="viewer1", role=Role.VIEWER, reason="ok")
    approved = approvals.approve(request["id"], actor="alice", role=Role.OPERATOR, reason="go")
    with pytest.raises(Conflict):
        approvals.approve(request["id"], actor="alice", role=Role.OPERATOR, reason="again")
    agent.run_once()
    (action,) = remedies(store)
    assert action["id"] == approved["action_id"] and action["state"] == "done"
    assert store.get_deployment(MODEL).live_version == deployed["v1"]  # type: ignore[union-attr]
    audit = {e["action"] for e in store.audit_entries(limit=50)}
    assert {"approval.request", "approval.approve", "action.done"} <= audit


def test_approvals_expire_and_rejections_stick(store: Store, deployed: dict) -> None:
    script = Script()
    agent = agent_for(store, script, "defaults: {mode: advisory}")
    for _ in range(3):
        script.add(MODEL, [finding("latency", 5)])
        agent.run_once()
    approvals = Approvals(store)
    (request,) = approvals.list(state="pending")
    expired = approvals.expire(now=utcnow() + timedelta(days=2))
    assert expired == [request["id"]]
    with pytest.raises(Conflict, match="expired"):
        approvals.approve(request["id"], actor="alice", role=Role.OPERATOR, reason="late")
    script.add(MODEL, [finding("latency", 5)])
    agent.run_once()
    assert approvals.list(state="pending") == []  # an expired remedy is not asked again
    assert remedies(store) == []


def test_memory_prefers_what_worked(store: Store, deployed: dict) -> None:
    script = Script()
    policy = "defaults: {actions: {latency_or_errors: [disable, fallback, alert]}}"
    agent = agent_for(store, script, policy)
    repo = AgentRepo(store)
    first = repo.create_incident(MODEL, 0, {}, "earlier")
    repo.update_incident(
        first, state="resolved", diagnosis="latency_or_errors", kinds=["latency"], features=[]
    )
    agent.journal.create(MODEL, "fallback", {"to_version": 1}, incident_id=first)
    Agent(store, source=Script()).journal.fail(1, "test history")
    for _ in range(3):
        script.add(MODEL, [finding("latency", 5)])
        agent.run_once()
    incident = repo.list_incidents()[0]
    decision = repo.get_incident(incident["id"])["decisions"][0]
    assert f"resembles incident {first}" in decision["rationale"]
    assert decision["action"] == "fallback"


def test_cooldown_after_a_resolved_incident(store: Store, deployed: dict) -> None:
    script = Script()
    agent = agent_for(store, script)
    for _ in range(3):
        script.add(MODEL, [finding("latency", 5)], latency_p99=900.0)
        agent.run_once()
    clean_windows(script, 2)
    agent.run_once()
    agent.run_once()
    assert AgentRepo(store).list_incidents()[0]["state"] == "resolved"
    store.set_deployment(
        MODEL,
        DeploymentState(live_version=deployed["v2"], fallback_version=deployed["v1"]),
        actor="ops",
        reason="back to v2",
    )
    for _ in range(3):
        script.add(MODEL, [finding("latency", 5)], latency_p99=900.0)
        agent.run_once()
    assert [a["kind"] for a in remedies(store)] == ["fallback"]  # the second is in cooldown
    decision = AgentRepo(store).get_incident(AgentRepo(store).list_incidents()[0]["id"])
    assert "cooldown is 30 min" in decision["decisions"][-1]["rationale"]
    _ = FEATURES


def test_a_release_during_a_canary_withdraws_the_canary_and_keeps_the_release(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    """The candidate was validated against the champion that the release replaced: its canary
    is withdrawn, the release keeps serving, and a drop after the release is the release's own
    incident, answered by a rollback (not folded into the retrain's)."""
    agent, script = _retrain_staged(store, deployed, elec)
    (retrain,) = remedies(store)
    old = elec.iloc[:2000]
    release = add_version(
        store,
        train(old.assign(target=old["target"].sample(frac=1.0, random_state=0).to_numpy())),
        old,
        "unknown",
    )
    store.set_deployment(
        MODEL,
        DeploymentState(
            live_version=release,
            fallback_version=deployed["v1"],
            canary_version=retrain["result"]["candidate_version"],
            canary_weight=0.1,
        ),
        actor="release-pipeline",
        reason="scheduled release",
    )
    script.add(MODEL, accuracy=0.8)
    agent.run_once()
    deployment = store.get_deployment(MODEL)
    assert deployment is not None and deployment.live_version == release
    assert deployment.canary_version is None and deployment.canary_weight == 0.0
    repo = AgentRepo(store)
    first = repo.get_incident(repo.list_incidents()[0]["id"])
    assert first["state"] == "superseded"
    assert "withdrawn" in first["timeline"][-1]["text"]
    assert [a["state"] for a in remedies(store)] == ["undone"]
    for _ in range(3):  # the released version answers worse, until the agent acts
        script.add(MODEL, [finding("concept_drift", 4, performance_drop=0.25)], accuracy=0.6)
        agent.run_once()
        if len(remedies(store)) > 1:
            break
    kinds = [a["kind"] for a in remedies(store)]
    assert kinds == ["rollback", "retrain"], kinds  # newest first
    newest = repo.get_incident(repo.list_incidents()[0]["id"])
    assert newest["diagnosis"] == "regression_after_deploy"
    assert store.get_deployment(MODEL).live_version == deployed["v2"]  # type: ignore[union-attr]


def test_a_remedy_tried_for_one_cause_does_not_hold_back_another(
    store: Store, deployed: dict, elec: pd.DataFrame
) -> None:
    """A fallback for a null burst, undone once the pipeline recovered, then a latency spike a
    minute later: the service incident falls back at once. The cooldown is per cause; on real
    flights a fallback tried for a quality finding held back the fallback of a stuck server."""
    broken = elec.iloc[30000:31500].copy()
    broken.loc[broken.index[:700], ["nswprice", "vicprice"]] = np.nan
    send_records(store, broken, version=deployed["v2"])
    script = Script()
    agent = agent_for(store, script)
    clean_windows(script, 3)
    agent.run_once()
    for _ in range(3):
        script.add(MODEL, [finding("data_quality", 8, ["nswprice"], traffic_share=0.47)])
        agent.run_once()
    clean_windows(script, 2)
    agent.run_once()
    (quality,) = AgentRepo(store).list_incidents()
    assert quality["state"] == "resolved"
    for _ in range(3):
        script.add(MODEL, [finding("latency", 5)], latency_p99=900.0)
        agent.run_once()
    taken = [(a["kind"], a["incident_id"]) for a in sorted(remedies(store), key=lambda a: a["id"])]
    service = next(i for i in AgentRepo(store).list_incidents() if i["scope"] == "service")
    assert taken == [("fallback", quality["id"]), ("fallback", service["id"])], taken


def test_a_drop_long_after_a_quality_incident_opened_is_judged_not_kept_waiting(
    store: Store, deployed: dict
) -> None:
    """A quality incident open since the first window (a calendar feature is constant in every
    window of a time-ordered stream) with performance holding, then a drop six windows later:
    the drop is judged on its own. One that began with the quality failure waits for it (see
    the null-burst test above)."""
    script = Script()
    # the quality incident only alerts, so it stays open (as one does when its remedies were
    # tried and undone)
    agent = agent_for(store, script, "defaults: {actions: {data_quality: [alert]}}")
    quality = finding("data_quality", 1.5, ["month"], check="constant")
    for _ in range(6):
        script.add(MODEL, [quality], accuracy=0.8)
        agent.run_once()
    for _ in range(3):
        script.add(
            MODEL,
            [quality, finding("concept_drift", 3, performance_drop=0.2)],
            accuracy=0.6,
        )
        agent.run_once()
    by_scope = {i["scope"]: i for i in AgentRepo(store).list_incidents()}
    assert by_scope["quality"]["state"] == "open"  # still open beside it
    performance = AgentRepo(store).get_incident(by_scope["performance"]["id"])
    assert performance["decisions"], performance["timeline"]
    assert performance["decisions"][-1]["diagnosis"] == "concept_drift"


def test_one_window_of_prediction_drift_opens_no_incident_two_in_a_row_or_a_strong_one_do(
    store: Store, deployed: dict
) -> None:
    """A prediction-drift test fires at its nominal rate on healthy windows (on a stationary
    fleet most false incidents were one such window): alone, it opens an incident only when
    the window before had one too, or when its p-value is far below that rate."""

    def drift(p: float) -> Any:
        return finding("prediction_drift", 3, ["score"]).model_copy(update={"p_value": p})

    script = Script()
    agent = agent_for(store, script)
    clean_windows(script, 3)
    agent.run_once()
    for findings in ([drift(0.004)], [], [drift(0.008)]):
        script.add(MODEL, findings, accuracy=0.8)
        agent.run_once()
        assert AgentRepo(store).list_incidents() == []
    script.add(MODEL, [drift(0.002)], accuracy=0.8)  # the second window in a row
    agent.run_once()
    (incident,) = AgentRepo(store).list_incidents()
    assert incident["scope"] == "drift" and incident["first_window"] == 7


def test_a_strong_prediction_drift_opens_an_incident_at_once(store: Store, deployed: dict) -> None:
    script = Script()
    agent = agent_for(store, script)
    clean_windows(script, 3)
    agent.run_once()
    script.add(
        MODEL,
        [finding("prediction_drift", 3, ["score"]).model_copy(update={"p_value": 1e-6})],
        accuracy=0.8,
    )
    agent.run_once()
    (incident,) = AgentRepo(store).list_incidents()
    assert incident["scope"] == "drift"
