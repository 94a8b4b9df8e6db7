"""Remedies chosen on evidence: scored on the incident's own stored records beside doing nothing,
with real scikit-learn versions answering the logged inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from agent_helpers import (
    FEATURES,
    MODEL,
    Script,
    add_version,
    finding,
    last_record_key,
    send_records,
    train,
)
from test_loop import agent_for, remedies

from mlwarden.agent.evidence import OptionScore, choose
from mlwarden.agent.remedies.retrain import load_estimator
from mlwarden.domain import DeploymentState
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store


def score(option: str, value: float, metric: str = "accuracy") -> OptionScore:
    return OptionScore(option, value, metric, labelled=500, failures=0)


def test_a_remedy_worse_than_doing_nothing_is_never_chosen() -> None:
    weighing = choose(score("keep", 0.728), [score("fallback", 0.702)], "fallback", 0.005)
    assert weighing.chosen == "keep"
    assert "worse than doing nothing" in weighing.reason


def test_the_policy_remedy_stands_unless_another_is_clearly_better() -> None:
    options = [score("fallback", 0.70), score("rollback", 0.703)]
    assert choose(score("keep", 0.55), options, "fallback", 0.005).chosen == "fallback"
    options = [score("fallback", 0.66), score("rollback", 0.72)]
    assert choose(score("keep", 0.55), options, "fallback", 0.005).chosen == "rollback"


def test_a_remedy_only_as_good_as_doing_nothing_is_taken_only_when_it_is_the_policys() -> None:
    # the table's remedy that costs nothing (say, a fallback against a latency spike) stands
    assert choose(score("keep", 0.776), [score("fallback", 0.774)], "fallback", 0.005).chosen == (
        "fallback"
    )
    # another remedy needs to be clearly better than doing nothing to overrule the table
    weighing = choose(score("keep", 0.776), [score("rollback", 0.778)], "fallback", 0.005)
    assert weighing.chosen == "keep"


def paired(option: str, right: list[float]) -> OptionScore:
    """An option scored record by record (1: answered right)."""
    return OptionScore(
        option, float(np.mean(right)), "accuracy", len(right), 0, per_row=tuple(right)
    )


def test_a_small_edge_within_the_noise_of_the_records_is_not_enough_to_act() -> None:
    # doing nothing and the fallback disagree on 400 of 1,000 records, the fallback right on
    # 202 of them: +0.004 on paper, within the noise of 1,000 records
    keep = np.array([1.0] * 500 + [0.0] * 500)
    fallback = keep.copy()
    fallback[500:702] = 1.0  # right where doing nothing was wrong
    fallback[:198] = 0.0  # wrong where doing nothing was right
    fallback_score = paired("fallback", fallback.tolist())
    keep_score = paired("keep", keep.tolist())
    assert fallback_score.value > keep_score.value
    # judged on the scores alone, the policy's remedy is taken
    assert choose(keep_score, [fallback_score], "fallback", 0.005).chosen == "fallback"
    noisy = choose(keep_score, [fallback_score], "fallback", 0.005, standard_errors=2.0)
    assert noisy.chosen == "keep"
    assert "no remedy is surely no worse than doing nothing" in noisy.reason
    # the same answers where the versions disagree on 2 records of 1,000: the edge is sure
    keep_quiet = np.ones(1000)
    keep_quiet[:10] = 0.0
    fallback_quiet = keep_quiet.copy()
    fallback_quiet[:2] = 1.0
    sure = choose(
        paired("keep", keep_quiet.tolist()),
        [paired("fallback", fallback_quiet.tolist())],
        "fallback",
        0.005,
        standard_errors=2.0,
    )
    assert sure.chosen == "fallback"


def test_a_large_edge_is_taken_whatever_the_noise() -> None:
    keep = [1.0] * 600 + [0.0] * 400
    frozen_fallback = [1.0] * 900 + [0.0] * 100  # a frozen champion against a working fallback
    weighing = choose(
        paired("keep", keep), [paired("fallback", frozen_fallback)], "fallback", 0.005, 2.0
    )
    assert weighing.chosen == "fallback"


def test_regression_tolerance_is_relative_to_the_rmse_of_doing_nothing() -> None:
    keep = score("keep", -80.7, "rmse")
    assert choose(keep, [score("fallback", -96.8, "rmse")], "fallback", 0.01).chosen == "keep"
    assert choose(keep, [score("fallback", -81.2, "rmse")], "fallback", 0.01).chosen == "fallback"


def _clean_windows(store: Store, script: Script, frame: pd.DataFrame, version: int) -> None:
    """Three windows of healthy records answered by ``version`` (real predictions)."""
    live = _estimator(store, version)
    for chunk in range(3):
        part = frame.iloc[chunk * 300 : (chunk + 1) * 300]
        send_records(
            store,
            part,
            version=version,
            prefix=f"clean{chunk}-",
            predictions=live.predict(part[FEATURES]),
        )
        script.add(MODEL, end=last_record_key(store), accuracy=0.8)


def _windows_of_records(
    store: Store, script: Script, frames: list[pd.DataFrame], findings: list[Any], **kw: Any
) -> None:
    """Store each frame as one window's records and close that window with its end key."""
    for number, frame in enumerate(frames):
        send_records(store, frame, prefix=f"w{len(script.windows.get(MODEL, []))}-{number}-", **kw)
        script.add(MODEL, findings, end=last_record_key(store), accuracy=0.6)


@pytest.fixture()
def frozen(store: Store, elec: pd.DataFrame) -> dict[str, Any]:
    """``elec`` with v1 (fallback) and v2 (live); v2's served answers are one constant."""
    from mlwarden.domain import FeatureSpec, ModelSpec, Task

    store.create_model(
        ModelSpec(
            name=MODEL,
            task=Task.CLASSIFICATION,
            features=[FeatureSpec(name=f) for f in FEATURES],
            target="target",
        )
    )
    old = elec.iloc[:3000]
    v1 = add_version(store, train(old, min_samples_leaf=20), old, "healthy")
    rng = np.random.default_rng(0)
    noise = old.assign(target=rng.permutation(old["target"].to_numpy()))
    v_bad = add_version(store, train(noise), noise, "healthy")  # labels shuffled: a coin flip
    v2 = add_version(store, train(old), old, "healthy")
    return {
        "v1": v1,
        "v_bad": v_bad,
        "v2": v2,
        "clean": elec.iloc[2000:2900],
        "recent": elec.iloc[3000:6000],
    }


def _serving_clean(store: Store, frozen: dict[str, Any], fallback: int) -> tuple[Any, Script]:
    """``frozen``'s v2 live with ``fallback``, three clean windows of it seen by the agent;
    returns the agent and the window script."""
    store.set_deployment(
        MODEL,
        DeploymentState(live_version=frozen["v2"], fallback_version=fallback),
        actor="test",
        reason="deploy",
    )
    script = Script()
    agent = agent_for(store, script)
    _clean_windows(store, script, frozen["clean"], frozen["v2"])
    agent.run_once()
    return agent, script


def _estimator(store: Store, version: int) -> Any:
    """A stored version's scikit-learn estimator, to answer test records as it would."""
    return load_estimator(store.load_artifact(MODEL, version))


def test_a_frozen_model_falls_back_because_the_fallback_answers_its_records_better(
    store: Store, frozen: dict[str, Any]
) -> None:
    agent, script = _serving_clean(store, frozen, frozen["v1"])
    recent = frozen["recent"]
    constant = np.zeros(1000, dtype=int)  # the stuck model answers 0 to everything
    collapse = finding("prediction_drift", 8, ["prediction"], collapse=True)
    for chunk in range(3):
        frame = recent.iloc[chunk * 1000 : (chunk + 1) * 1000]
        _windows_of_records(
            store, script, [frame], [collapse], version=frozen["v2"], predictions=constant
        )
        agent.run_once()
    assert [a["kind"] for a in remedies(store)] == ["fallback"]
    incident = AgentRepo(store).list_incidents(state="verifying")[0]
    decision = [d for d in AgentRepo(store).get_incident(incident["id"])["decisions"]][-1]
    scores = {s["option"]: s["value"] for s in decision["params"]["evidence"]["scores"]}
    truth = recent["target"].to_numpy()
    assert scores["keep"] == pytest.approx(float(np.mean(truth == 0)), abs=1e-6)
    assert scores["fallback"] > scores["keep"] + 0.05
    assert scores["disable"] == 0.0  # a refused request is a wrong answer by default
    assert "evidence: fallback (version" in decision["rationale"]


def test_a_fallback_that_would_serve_worse_than_doing_nothing_is_not_taken(
    store: Store, frozen: dict[str, Any]
) -> None:
    # the configured fallback is the coin flip; the live model still answers well on the
    # broken inputs, so a data-quality incident gets an alert and no deployment change
    agent, script = _serving_clean(store, frozen, frozen["v_bad"])
    revision = store.get_deployment(MODEL).revision  # type: ignore[union-attr]
    recent = frozen["recent"]
    live = _estimator(store, frozen["v2"])
    nulls = finding("data_quality", 8, ["nswprice"], traffic_share=0.1)
    for chunk in range(3):
        frame = recent.iloc[chunk * 1000 : (chunk + 1) * 1000]
        served = live.predict(frame[FEATURES])
        _windows_of_records(
            store, script, [frame], [nulls], version=frozen["v2"], predictions=served
        )
        agent.run_once()
    assert remedies(store) == []
    assert store.get_deployment(MODEL).revision == revision  # type: ignore[union-attr]
    incident = AgentRepo(store).list_incidents()[0]
    decision = AgentRepo(store).get_incident(incident["id"])["decisions"][-1]
    assert decision["action"] == "alert"
    assert "worse than doing nothing" in decision["rationale"]
    scores = {s["option"]: s["value"] for s in decision["params"]["evidence"]["scores"]}
    assert scores["fallback"] < scores["keep"] - 0.05


def _unit_change_on(store: Store, frozen: dict[str, Any], feature: str) -> Any:
    """Clean windows, then three windows whose ``feature`` arrives x100 (a unit change), the
    live decision tree answering what it is sent; returns the live estimator."""
    return _unit_change_seen(store, frozen, feature)[2]


def _unit_change_seen(
    store: Store, frozen: dict[str, Any], feature: str
) -> tuple[Any, Script, Any]:
    """``_unit_change_on``, returning the agent, its window script and the live estimator."""
    agent, script = _serving_clean(store, frozen, frozen["v1"])
    live = _estimator(store, frozen["v2"])
    scaled = frozen["recent"].assign(**{feature: frozen["recent"][feature] * 100})
    unit = finding("data_quality", 8, [feature], check="unit_change", factor=100.0)
    for chunk in range(3):
        frame = scaled.iloc[chunk * 1000 : (chunk + 1) * 1000]
        _windows_of_records(
            store,
            script,
            [frame],
            [unit],
            version=frozen["v2"],
            predictions=live.predict(frame[FEATURES]),
        )
        agent.run_once()
    return agent, script, live


def _quality_scores(store: Store) -> dict[str, float]:
    repo = AgentRepo(store)
    incident = next(i for i in repo.list_incidents() if i["diagnosis"] == "data_quality")
    decision = repo.get_incident(incident["id"])["decisions"][-1]
    return {s["option"]: s["value"] for s in decision["params"]["evidence"]["scores"]}


def test_a_unit_change_is_repaired_at_the_gateway_because_the_repair_answers_best(
    store: Store, frozen: dict[str, Any]
) -> None:
    live = _unit_change_on(store, frozen, "nswprice")
    assert [a["kind"] for a in remedies(store)] == ["repair"]
    rule = store.get_deployment(MODEL).input_repair["nswprice"]
    assert rule.divide_by == 100.0 and rule.low is not None and rule.high is not None
    assert rule.low < float(frozen["recent"]["nswprice"].median()) < rule.high
    scores = _quality_scores(store)
    truth = frozen["recent"]["target"].to_numpy()
    clean = float(np.mean(live.predict(frozen["recent"][FEATURES]) == truth))
    assert scores["repair"] == pytest.approx(clean, abs=1e-6)  # every scaled price undone
    assert scores["repair"] > scores["keep"] + 0.3 and scores["repair"] > scores["fallback"]


def test_a_repair_that_would_serve_worse_than_the_broken_inputs_is_not_taken(
    store: Store, frozen: dict[str, Any]
) -> None:
    # this tree answers the recent records better with demand x100 (it then ignores demand)
    # than with the true demand: mending the inputs would serve worse than doing nothing
    _unit_change_on(store, frozen, "nswdemand")
    assert remedies(store) == []
    scores = _quality_scores(store)
    assert scores["keep"] > scores["repair"] > scores["fallback"]


def test_a_fallback_hands_the_traffic_back_once_the_champion_answers_its_shadow_copies_well(
    store: Store, frozen: dict[str, Any]
) -> None:
    v1, v2 = frozen["v1"], frozen["v2"]
    agent, script = _serving_clean(store, frozen, v1)
    recent = frozen["recent"]
    collapse = finding("prediction_drift", 8, ["prediction"], collapse=True)
    for chunk in range(3):
        frame = recent.iloc[chunk * 1000 : (chunk + 1) * 1000]
        _windows_of_records(
            store, script, [frame], [collapse], version=v2, predictions=np.zeros(1000, dtype=int)
        )
        agent.run_once()
    assert [a["kind"] for a in remedies(store)] == ["fallback"]
    deployment = store.get_deployment(MODEL)
    assert (deployment.live_version, deployment.shadow_version) == (v1, v2)

    fallback = _estimator(store, v1)
    champion = _estimator(store, v2)
    later = frozen["clean"]

    def window(number: int, champion_answers: np.ndarray) -> None:
        part = later.iloc[number * 300 : (number + 1) * 300]
        send_records(
            store,
            part,
            version=v2,
            prefix=f"shadow{number}-",
            served_by="shadow",
            predictions=champion_answers[: len(part)],
            labels=False,
        )
        send_records(
            store,
            part,
            version=v1,
            prefix=f"after{number}-",
            predictions=fallback.predict(part[FEATURES]),
        )
        script.add(MODEL, end=last_record_key(store), accuracy=0.8)
        agent.run_once()

    window(0, np.ones(300, dtype=int))  # still stuck in shadow: the fallback stays
    assert store.get_deployment(MODEL).live_version == v1
    window(1, champion.predict(later.iloc[300:600][FEATURES]))  # healthy again: handed back
    deployment = store.get_deployment(MODEL)
    assert (deployment.live_version, deployment.shadow_version) == (v2, None)
    incident = AgentRepo(store).list_incidents()[0]
    events = [e["event"] for e in AgentRepo(store).get_incident(incident["id"])["timeline"]]
    assert "released" in events and incident["state"] == "verifying"
    for number in (2, 3):
        part = later.iloc[number * 200 : (number + 1) * 200]
        send_records(
            store,
            part,
            version=v2,
            prefix=f"back{number}-",
            predictions=champion.predict(part[FEATURES]),
        )
        script.add(MODEL, end=last_record_key(store), accuracy=0.8)
        agent.run_once()
    assert AgentRepo(store).get_incident(incident["id"])["state"] == "resolved"


def _bad_windows(store: Store, frozen: dict[str, Any], agent: Any, script: Script) -> None:
    """Three windows of recent records answered by ``v_bad`` (a coin flip), each closed with the
    drop its real answers show."""
    bad = _estimator(store, frozen["v_bad"])
    for chunk in range(3):
        frame = frozen["recent"].iloc[chunk * 600 : (chunk + 1) * 600]
        answers = bad.predict(frame[FEATURES])
        accuracy = float(np.mean(answers == frame["target"].to_numpy()))
        send_records(
            store, frame, version=frozen["v_bad"], prefix=f"bad{chunk}-", predictions=answers
        )
        drop = finding("concept_drift", 5, performance_drop=round(0.8 - accuracy, 3))
        script.add(MODEL, [drop], end=last_record_key(store), accuracy=accuracy)
        agent.run_once()


def test_a_remedy_that_misses_the_baseline_under_drift_is_judged_against_doing_nothing(
    store: Store, frozen: dict[str, Any]
) -> None:
    v_bad, v2 = frozen["v_bad"], frozen["v2"]
    agent, script = _serving_clean(store, frozen, frozen["v1"])
    store.set_version_health(MODEL, v_bad, "unknown")
    store.set_deployment(MODEL, DeploymentState(live_version=v_bad), actor="ci", reason="v3")
    _bad_windows(store, frozen, agent, script)
    (remedy,) = remedies(store)
    assert remedy["kind"] == "rollback" and remedy["state"] == "done"
    now = remedy["params"]["to_version"]
    assert now == v2 and store.get_deployment(MODEL).live_version == v2
    good = _estimator(store, now)
    recent = frozen["recent"]
    # the world moved on: the windows after the remedy stay below the pre-failure baseline,
    # but the version now serving answers every record of the incident far better than v_bad
    for chunk in range(3, 5):
        frame = recent.iloc[chunk * 600 : (chunk + 1) * 600]
        send_records(
            store,
            frame,
            version=now,
            prefix=f"after{chunk}-",
            predictions=good.predict(frame[FEATURES]),
        )
        script.add(MODEL, end=last_record_key(store), accuracy=0.6)
        agent.run_once()
    incident = next(
        AgentRepo(store).get_incident(i["id"])
        for i in AgentRepo(store).list_incidents()
        if i["diagnosis"] == "regression_after_deploy"
    )
    assert incident["state"] == "resolved"
    (verification,) = incident["verifications"]
    assert verification["verdict"] == "recovered"
    assert "below the baseline" in verification["details"]
    assert "since the incident began, rollback (version" in verification["details"]
    assert store.get_deployment(MODEL).live_version == now  # not undone


def test_a_drop_on_a_proven_version_goes_back_to_the_version_before_rather_than_retrain(
    store: Store, frozen: dict[str, Any]
) -> None:
    """The live version had been verified (as a promoted candidate is) when its answers went
    bad: the table says retrain, but the version that served before answers the incident's
    records far better, so the agent goes back to it, proven on the same records."""
    v_bad, v2 = frozen["v_bad"], frozen["v2"]
    agent, script = _serving_clean(store, frozen, frozen["v1"])
    store.set_deployment(
        MODEL,
        DeploymentState(live_version=v_bad, fallback_version=frozen["v1"]),
        actor="agent",
        reason="promote version 3",
    )
    assert store.get_version(MODEL, v_bad).health == "healthy"  # not a suspect new release
    _bad_windows(store, frozen, agent, script)
    (remedy,) = remedies(store)
    assert remedy["kind"] == "rollback" and remedy["state"] == "done", remedy
    assert remedy["params"]["to_version"] == v2
    assert store.get_deployment(MODEL).live_version == v2  # type: ignore[union-attr]
    weighing = remedy["params"]["evidence"]
    scores = {s["option"]: s["value"] for s in weighing["scores"]}
    assert weighing["chosen"] == "rollback" and scores["rollback"] > scores["keep"] + 0.1
    (incident,) = [
        AgentRepo(store).get_incident(i["id"])
        for i in AgentRepo(store).list_incidents()
        if i["diagnosis"] == "concept_drift"
    ]
    decision = incident["decisions"][-1]
    assert decision["action"] == "rollback"
    assert "Not retrain: version" in decision["rationale"]
    assert "a retrain is slower and unproven" in decision["rationale"]


def test_a_remedy_no_better_yet_stays_and_is_judged_again_until_it_shows(
    store: Store, frozen: dict[str, Any]
) -> None:
    """A rollback that misses the baseline and, so far, answers the incident's records no
    better than the bad version did is neither undone nor escalated at once: it stays, the
    incident keeps watching, and once the records show it better it is verified."""
    v_bad, v2 = frozen["v_bad"], frozen["v2"]
    agent, script = _serving_clean(store, frozen, frozen["v1"])
    store.set_version_health(MODEL, v_bad, "unknown")
    store.set_deployment(MODEL, DeploymentState(live_version=v_bad), actor="ci", reason="v3")
    bad, good = _estimator(store, v_bad), _estimator(store, v2)
    recent = frozen["recent"]
    alike = bad.predict(recent[FEATURES]) == good.predict(recent[FEATURES])
    same, differ = recent[alike], recent[~alike]  # requests both answer alike, or not

    def window(frame: pd.DataFrame, version: int, estimator: Any, prefix: str, **kw: Any) -> None:
        send_records(
            store,
            frame,
            version=version,
            prefix=prefix,
            predictions=estimator.predict(frame[FEATURES]),
        )
        script.add(MODEL, end=last_record_key(store), accuracy=0.6, **kw)
        agent.run_once()

    for chunk in range(3):
        drop = finding("concept_drift", 5, performance_drop=0.2)
        send_records(
            store,
            same.iloc[chunk * 300 : (chunk + 1) * 300],
            version=v_bad,
            prefix=f"bad{chunk}-",
            predictions=bad.predict(same.iloc[chunk * 300 : (chunk + 1) * 300][FEATURES]),
        )
        script.add(MODEL, [drop], end=last_record_key(store), accuracy=0.6)
        agent.run_once()
    (rollback,) = remedies(store)
    assert rollback["kind"] == "rollback" and rollback["params"]["to_version"] == v2
    for chunk in range(3, 5):  # below the baseline, and no better than v_bad on these requests
        window(same.iloc[chunk * 300 : (chunk + 1) * 300], v2, good, f"after{chunk}-")
    incident = next(
        AgentRepo(store).get_incident(i["id"])
        for i in AgentRepo(store).list_incidents()
        if i["diagnosis"] == "regression_after_deploy"
    )
    assert incident["state"] == "verifying" and incident["verifications"] == []
    assert "watching" in [e["event"] for e in incident["timeline"]]
    assert store.get_deployment(MODEL).live_version == v2  # type: ignore[union-attr]
    for chunk in range(2):  # requests where the two differ: v2 is right far more often
        window(differ.iloc[chunk * 300 : (chunk + 1) * 300], v2, good, f"later{chunk}-")
    incident = AgentRepo(store).get_incident(incident["id"])
    assert incident["state"] == "resolved", incident["timeline"][-1]
    (verification,) = incident["verifications"]
    assert verification["verdict"] == "recovered"
    assert "the remedy helps" in verification["details"]
    assert rollback["id"] == remedies(store)[0]["id"] and remedies(store)[0]["state"] == "done"


def test_a_repair_that_served_better_than_doing_nothing_stays_when_quality_is_back(
    store: Store, frozen: dict[str, Any]
) -> None:
    # bike rentals in time order: a repair of unseen seasons served RMSE 109.0 against 113.1,
    # was released at the first window without an unseen season and the incident declared
    # "broken again" by a column constant over six weeks (no defect a repair mends)
    agent, script, live = _unit_change_seen(store, frozen, "nswprice")
    assert [a["kind"] for a in remedies(store)] == ["repair"]
    recent = frozen["recent"]
    constant = finding("data_quality", 8, ["day"], check="constant")  # not the repair's
    unit = finding("data_quality", 8, ["nswprice"], check="unit_change", factor=100.0)
    # one more window of scaled prices: the gateway served the mended inputs' answers
    still = recent.iloc[:1000].assign(nswprice=recent["nswprice"].iloc[:1000] * 100)
    _windows_of_records(
        store,
        script,
        [still],
        [unit, constant],
        version=frozen["v2"],
        predictions=live.predict(recent.iloc[:1000][FEATURES]),
    )
    agent.run_once()
    for chunk in (1, 2):  # the prices are right again; the constant column stays
        part = recent.iloc[chunk * 1000 : (chunk + 1) * 1000]
        _windows_of_records(
            store,
            script,
            [part],
            [constant],
            version=frozen["v2"],
            predictions=live.predict(part[FEATURES]),
        )
        agent.run_once()
    repo = AgentRepo(store)
    incident = next(i for i in repo.list_incidents() if i["diagnosis"] == "data_quality")
    incident = repo.get_incident(incident["id"])
    assert incident["state"] == "resolved"
    [repair] = remedies(store)
    assert repair["state"] == "done"  # not undone: it keeps mending a unit change to come
    assert "nswprice" in store.get_deployment(MODEL).input_repair
    kept = next(e["text"] for e in incident["timeline"] if e["event"] == "kept")
    assert "had nothing been done" in kept
    assert [v["verdict"] for v in incident["verifications"]] == ["recovered"]


def test_a_quality_incident_plans_its_input_repair_once_while_its_findings_stay_the_same(
    store: Store, frozen: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the plan is asked for at every window the incident lasts: it is read from the live
    # version's training sample once, and again only when what it is planned from changes
    agent, _ = _serving_clean(store, frozen, frozen["v1"])
    read = []
    sample_of = store.reference_sample
    monkeypatch.setattr(
        store,
        "reference_sample",
        lambda model, number: read.append(number) or sample_of(model, number),
    )
    history = store.deployment_history(MODEL, limit=50)
    price = finding("data_quality", 8, ["nswprice"], check="unit_change", factor=100.0)
    first = agent._repair_plan(MODEL, history, [price])
    again = agent._repair_plan(MODEL, history, [price.model_copy(update={"score": 9.0})])
    assert again == first and first["nswprice"].divide_by == 100.0 and read == [frozen["v2"]]
    again["nswprice"] = first["nswprice"].model_copy(update={"divide_by": 10.0})
    assert agent._repair_plan(MODEL, history, [price])["nswprice"].divide_by == 100.0

    tenfold = finding("data_quality", 8, ["nswprice"], check="unit_change", factor=10.0)
    assert agent._repair_plan(MODEL, history, [tenfold])["nswprice"].divide_by == 10.0
    demand = finding("data_quality", 8, ["nswdemand"], check="null_burst")
    assert set(agent._repair_plan(MODEL, history, [demand])) == {"nswdemand"}
    store.set_deployment(
        MODEL,
        DeploymentState(live_version=frozen["v1"], fallback_version=frozen["v2"]),
        actor="test",
        reason="deploy",
    )
    moved = store.deployment_history(MODEL, limit=50)
    assert set(agent._repair_plan(MODEL, moved, [demand])) == {"nswdemand"}
    assert read == [frozen["v2"], frozen["v2"], frozen["v2"], frozen["v1"]]
