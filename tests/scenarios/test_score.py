"""Scoring a simulation on small hand-made timelines: harm and each expectation key (no run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlwarden.domain import ActionKind, Task
from mlwarden.errors import InvalidInput
from mlwarden.scenarios.data import prepare
from mlwarden.scenarios.score import harm, score
from mlwarden.scenarios.simulate import (
    Operator,
    changed_rows,
    clean_row,
    clean_rows,
    metric_of,
    summarise,
)
from mlwarden.scenarios.spec import Scenario, in_order, load_scenario
from mlwarden.store.repository import Store


def scenario(
    expect: dict[str, Any] | None, faults: list[dict[str, Any]] | None = None, **extra: Any
) -> Scenario:
    """Six windows of 1,000 electricity records; by default a null burst in windows 2-3."""
    return Scenario.model_validate(
        {
            "name": "hand_made",
            "dataset": "electricity",
            "reference": [0, 5000],
            "stream": [5000, 11000],
            "window": 1000,
            "faults": [
                {
                    "kind": "null_burst",
                    "feature": "nswprice",
                    "rate": 0.5,
                    "start": 2000,
                    "end": 4000,
                }
            ]
            if faults is None
            else faults,
            "expect": expect,
            **extra,
        }
    )


def timeline(
    served: list[float],
    no_action: list[float],
    metric: str = "accuracy",
    findings: dict[int, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """One window per value: what mlwarden served and what doing nothing would have."""
    return [
        {
            "index": i,
            "metric_name": metric,
            "metrics": {metric: ours},
            "baselines": {"no_action": theirs, "oracle": max(ours, theirs)},
            "findings": [{"kind": k, "features": []} for k in (findings or {}).get(i, [])],
        }
        for i, (ours, theirs) in enumerate(zip(served, no_action, strict=True))
    ]


def check(result: dict[str, Any], prefix: str) -> dict[str, Any]:
    found = [c for c in result["checks"] if c["expect"].startswith(prefix)]
    assert len(found) == 1, result["checks"]
    return found[0]


CLEAN = [0.78, 0.77, 0.78, 0.77, 0.78, 0.77]


# ---------------------------------------------------------------------------- harm


def test_harm_fails_when_mlwarden_serves_worse_than_doing_nothing_beyond_the_tolerance() -> None:
    # windows 2-5 are the fault period (two grace windows after the burst ends at window 3)
    worse = timeline([0.78, 0.77, 0.70, 0.70, 0.75, 0.77], [0.78, 0.77, 0.73, 0.73, 0.78, 0.77])
    result = score(scenario({}), worse, [])
    assert result["passed"] is False
    harmed = result["harm"]
    assert harmed["fault_periods"]["mlwarden"] == pytest.approx(0.73)
    assert harmed["fault_periods"]["no_action"] == pytest.approx(0.7525)
    assert harmed["fault_periods"]["delta"] == pytest.approx(-0.0225)
    assert harmed["worse"] is True and harmed["helped"] is False
    assert check(result, "no worse than doing nothing")["passed"] is False


def test_harm_passes_within_the_tolerance_and_helped_needs_more_than_the_tolerance() -> None:
    # 0.004 worse over the fault period: noise under the default 0.005, neither harm nor help
    close = timeline(CLEAN, [0.78, 0.77, 0.782, 0.774, 0.784, 0.776])
    result = score(scenario({}), close, [])
    assert result["passed"] is True
    assert result["harm"]["worse"] is False and result["harm"]["helped"] is False
    better = timeline(CLEAN, [0.78, 0.77, 0.60, 0.60, 0.78, 0.77])
    assert score(scenario({}), better, [])["harm"]["helped"] is True


def test_the_scenario_tolerance_key_replaces_the_default() -> None:
    worse = timeline(CLEAN, [0.78, 0.77, 0.80, 0.79, 0.78, 0.77])  # 0.01 worse on average
    assert score(scenario({}), worse, [])["passed"] is False
    assert score(scenario({"tolerance": 0.02}), worse, [])["passed"] is True


def test_harm_on_rmse_is_relative_and_lower_is_better() -> None:
    no_action = [80.0, 80.0, 80.0, 80.0, 80.0, 80.0]
    slightly = timeline([80.0, 80.0, 80.5, 80.5, 80.5, 80.5], no_action, metric="rmse")
    result = harm(scenario({}), slightly)
    assert result["metric"] == "rmse" and result["tolerance"] == 0.01
    assert result["worse"] is False  # 0.6% worse: inside 1%
    much = timeline([80.0, 80.0, 96.0, 96.0, 96.0, 96.0], no_action, metric="rmse")
    assert harm(scenario({}), much)["worse"] is True
    assert harm(scenario({}), much)["fault_periods"]["loss"] == pytest.approx(0.2)
    better = timeline([80.0, 80.0, 60.0, 60.0, 60.0, 60.0], no_action, metric="rmse")
    assert harm(scenario({}), better)["helped"] is True


def test_harm_also_counts_the_whole_stream_and_a_faultless_scenario_is_scored_on_all_of_it() -> (
    None
):
    # an action on a clean window (0) that costs accuracy is harm even though the fault period
    # looks fine
    early = timeline([0.60, 0.77, 0.78, 0.77, 0.78, 0.77], CLEAN)
    result = harm(scenario({}), early)
    assert result["fault_periods"]["loss"] == 0.0 and result["worse"] is True
    control = harm(scenario({}, faults=[]), timeline([0.70] * 6, CLEAN))
    assert control["fault_periods"]["windows"] == list(range(6)) and control["worse"] is True


def test_a_refused_request_is_a_wrong_answer_so_disabling_scores_badly() -> None:
    truth = [1, 0, 1, 1]
    assert metric_of(Task.CLASSIFICATION, truth, [1, 0, None, None]) == 0.5
    # regression: a missing answer costs the error of answering the reference mean
    assert metric_of(Task.REGRESSION, [10.0, 20.0], [10.0, None], unanswered=15.0) == (
        pytest.approx((0 + 25 / 2) ** 0.5)
    )
    # a schema break refuses half the requests whatever the agent does (0.39 doing nothing);
    # disabling the model refuses all of them (0.0): that is harm, not recovery
    disabled = timeline([0.78, 0.77, 0.0, 0.0, 0.77, 0.78], [0.78, 0.77, 0.39, 0.39, 0.77, 0.78])
    result = score(
        scenario({"recovery": True}),
        disabled,
        [{"window": 2, "action": "disable", "outcome": "succeeded"}],
    )
    assert check(result, "recovery verified")["passed"] is True  # the old score: fooled
    assert check(result, "no worse than doing nothing")["passed"] is False
    assert result["passed"] is False


def test_harm_can_be_switched_off() -> None:
    worse = timeline([0.78, 0.77, 0.5, 0.5, 0.5, 0.5], CLEAN)
    assert score(scenario({"harm": False}), worse, [])["passed"] is True


# ---------------------------------------------------------------------------- actions


def test_never_fails_on_a_forbidden_action_taken_or_asked_for() -> None:
    spec = scenario({"never": ["retrain", "disable"]})
    line = timeline(CLEAN, CLEAN)
    ok = [{"window": 2, "action": "fallback", "outcome": "succeeded"}]
    assert check(score(spec, line, ok), "never")["passed"] is True
    asked = [*ok, {"window": 3, "action": "retrain", "outcome": "pending"}]
    assert check(score(spec, line, asked), "never")["passed"] is False


def test_never_during_faults_allows_the_action_outside_the_fault_periods() -> None:
    # on a drifting stream a retrain before the fault may be right; during it, it is not
    spec = scenario({"never_during_faults": ["retrain"]})
    line = timeline(CLEAN, CLEAN)
    before = [{"window": 1, "action": "retrain", "outcome": "pending"}]
    assert check(score(spec, line, before), "never retrain in the fault periods")["passed"]
    during = [{"window": 3, "action": "retrain", "outcome": "succeeded"}]
    assert not check(score(spec, line, during), "never retrain in the fault periods")["passed"]


def test_an_action_deadline_and_outcome() -> None:
    spec = scenario({"actions": [{"action": "rollback", "within": 1, "outcome": "succeeded"}]})
    line = timeline(CLEAN, CLEAN)

    def passed(actions: list[dict[str, Any]]) -> bool:
        return check(score(spec, line, actions), "action rollback")["passed"]

    assert passed([{"window": 3, "action": "rollback", "outcome": "succeeded"}])
    assert not passed([{"window": 4, "action": "rollback", "outcome": "succeeded"}])  # late
    assert not passed([{"window": 1, "action": "rollback", "outcome": "succeeded"}])  # early
    assert not passed([{"window": 2, "action": "rollback", "outcome": "reverted"}])
    assert not passed([{"window": 2, "action": "retrain", "outcome": "succeeded"}])


def test_an_expected_action_may_be_any_of_several_and_count_from_a_named_fault() -> None:
    faults = [
        {"kind": "traffic_surge", "multiplier": 5, "start": 1000, "end": 5000},
        {"kind": "prediction_freeze", "start": 3000, "end": 5000},
    ]
    spec = scenario(
        {
            "actions": [
                {"action": ["fallback", "rollback"], "within": 1, "fault": "prediction_freeze"}
            ]
        },
        faults=faults,
    )
    line = timeline(CLEAN, CLEAN)
    result = score(spec, line, [{"window": 4, "action": "rollback", "outcome": "succeeded"}])
    assert check(result, "action fallback or rollback within 1 windows of window 3")["passed"]
    early = score(spec, line, [{"window": 1, "action": "fallback", "outcome": "succeeded"}])
    assert check(early, "action fallback or rollback")["passed"] is False


def test_the_plain_list_of_actions_still_works() -> None:
    spec = scenario({"actions": ["fallback"]})
    line = timeline(CLEAN, CLEAN)
    assert check(
        score(spec, line, [{"window": 5, "action": "fallback", "outcome": "reverted"}]),
        "action fallback",
    )["passed"]
    assert not check(score(spec, line, []), "action fallback")["passed"]


# ---------------------------------------------------------------------------- incidents, metric


def test_incident_count_and_severity() -> None:
    spec = scenario({"incidents": {"min": 1, "max": 2, "severity": "high", "max_severity": "high"}})
    line = timeline(CLEAN, CLEAN)

    def failed(incidents: list[dict[str, Any]]) -> list[str]:
        return [c["expect"] for c in score(spec, line, [], incidents)["checks"] if not c["passed"]]

    assert failed([{"max_severity": "high", "playbook": None}]) == []
    assert failed([]) == ["at least 1 incidents", "an incident of severity high or more"]
    assert failed([{"max_severity": "medium"}] * 3) == [
        "at most 2 incidents",
        "an incident of severity high or more",
    ]
    assert failed([{"max_severity": "critical"}]) == ["no incident above severity high"]
    exactly = scenario({"incidents": {"count": 1}})
    assert not score(exactly, line, [], [{"max_severity": "low"}] * 2)["passed"]
    assert score(exactly, line, [], [{"max_severity": "low"}])["passed"]


def test_metric_bounds_over_the_fault_period() -> None:
    line = timeline([0.78, 0.77, 0.70, 0.70, 0.72, 0.72], [0.78, 0.77, 0.60, 0.60, 0.60, 0.60])
    assert score(scenario({"metric": {"min": 0.70}}), line, [])["passed"]
    assert not score(scenario({"metric": {"min": 0.72}}), line, [])["passed"]
    rmse = timeline([80.0, 80.0, 90.0, 90.0, 90.0, 90.0], [80.0] * 6, metric="rmse")
    spec = scenario({"metric": {"max": 85.0}, "harm": False})
    assert check(score(spec, rmse, []), "served rmse over the fault periods <= 85.0") == {
        "expect": "served rmse over the fault periods <= 85.0",
        "passed": False,
        "served": 90.0,
    }


def test_bad_expectation_keys_get_clear_errors(tmp_path: Path) -> None:
    base = {"name": "x", "dataset": "electricity", "reference": [0, 1000], "stream": [1000, 3000]}
    for expect, message in (
        ({"never": ["reboot"]}, "expect.never.0"),
        ({"actions": [{"action": "rollback", "within": -1}]}, "within"),
        ({"actions": [{"action": "rollback", "outcome": "fine"}]}, "outcome"),
        ({"incidents": {"severity": "dire"}}, "severity"),
        ({"tolerance": -0.1}, "tolerance"),
    ):
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump({**base, "expect": expect}))
        with pytest.raises(InvalidInput, match=message):
            load_scenario(path)
    path.write_text(yaml.safe_dump({**base, "approve": "sometimes"}))
    with pytest.raises(InvalidInput, match="approve"):
        load_scenario(path)


# ---------------------------------------------------------------------------- data and order


def test_a_dataset_path_is_read_from_the_scenario_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "scenarios"
    (folder / "data").mkdir(parents=True)
    rows = pd.DataFrame({"x": [float(i) for i in range(40)], "y": [i % 2 for i in range(40)]})
    rows.to_csv(folder / "data" / "rows.csv", index=False)
    (folder / "mine.yaml").write_text(
        "name: mine\ndataset: data/rows.csv\ntarget: y\nreference: [0, 20]\n"
        "stream: [20, 40]\nwindow: 10\n"
    )
    monkeypatch.chdir(tmp_path)  # elsewhere: a path relative to the caller would not exist
    spec = load_scenario(folder / "mine.yaml")
    assert spec.dataset == str((folder / "data" / "rows.csv").resolve())
    data = prepare(spec, seed=0)
    assert data.stream["x"].tolist() == [float(i) for i in range(20, 40)]
    assert load_scenario("elec_null_burst").dataset == "electricity"  # bundled names stay


def test_time_order_streams_the_rows_as_the_dataset_holds_them() -> None:
    spec = load_scenario("elec_null_burst")
    assert spec.shuffle is True
    timed = load_scenario("elec_null_burst", order="time")
    assert timed.shuffle is False and in_order(timed, "shuffled").shuffle is True
    from mlwarden import datasets

    frame = datasets.load("electricity")
    stream = prepare(timed, seed=0).stream
    assert stream["nswprice"].tolist() == frame["nswprice"].iloc[25000:37000].tolist()
    assert prepare(spec, seed=0).stream["nswprice"].tolist() != stream["nswprice"].tolist()


# ---------------------------------------------------------------------------- the operator


@pytest.fixture
def approvals_store(store: Store) -> Any:
    """The approvals queue of a model registered in a real store (SQLite and PostgreSQL)."""
    from mlwarden.registry.registry import Registry
    from mlwarden.store.approvals import Approvals

    spec = prepare(load_scenario("control_titanic"), seed=0).spec
    Registry(store).register_model(spec, actor="test")
    return Approvals(store), spec.name


def _ask(approvals: Any, model: str) -> int:
    return approvals.request(model, ActionKind.RETRAIN, {}, expiry_minutes=60)


def test_the_operator_stand_in_approves_after_n_windows(approvals_store: Any) -> None:
    approvals, model = approvals_store
    first = _ask(approvals, model)
    operator = Operator(approvals, model, load_scenario("elec_time_concept_change").approve)
    assert operator.answer(5) == {}  # asked at window 5: waits one window
    assert approvals.get(first)["state"] == "pending"
    assert operator.answer(6) == {first: "approved"}
    approved = approvals.get(first)
    assert approved["state"] == "approved" and approved["decided_by"] == "operator"


def test_the_operator_stand_in_always_never_and_reject(approvals_store: Any) -> None:
    approvals, model = approvals_store
    asked = _ask(approvals, model)
    assert Operator(approvals, model, "never").answer(0) == {}
    assert approvals.get(asked)["state"] == "pending"
    assert Operator(approvals, model, "reject").answer(0) == {asked: "rejected"}
    again = _ask(approvals, model)
    assert Operator(approvals, model, "always").answer(0) == {again: "approved"}
    assert approvals.get(asked)["state"] == "rejected"
    # approving journals the action for the agent's next pass, as an operator's click does
    assert approvals.journal.list(model)[0]["kind"] == "retrain"


def test_the_summary_counts_every_incident_not_only_the_newest_of_a_window() -> None:
    """A deploy's drop and the drift of the same windows open two incidents at once; the score
    reads the playbook of each (the newest alone hid the rollback's incident)."""
    windows = timeline([0.8] * 3, [0.8] * 3)
    performance = {
        "id": 1,
        "state": "open",
        "severity": "critical",
        "diagnosis": "regression_after_deploy",
    }
    drift = {"id": 2, "state": "open", "severity": "high", "diagnosis": "covariate_drift_stable"}
    for w in windows:
        w["incident"] = drift
        w["incidents"] = [performance, drift]
    windows[-1]["incidents"][0] = {**performance, "state": "resolved"}
    summary = summarise(
        scenario({"playbooks": ["bad_model_deploy"]}, faults=[]),
        windows,
        [],
        {1: "bad_model_deploy", 2: "covariate_drift"},
    )
    assert [i["kind"] for i in summary["incidents"]] == [
        "regression_after_deploy",
        "covariate_drift_stable",
    ]
    assert summary["incidents"][0]["resolved_window"] == 2
    assert check(summary["score"], "an incident diagnosed as bad_model_deploy")["passed"]


def test_helps_is_asked_only_where_mending_the_fault_would_help() -> None:
    """A fault that costs nothing (the unfaulted stream serves no better than the faulted one,
    as a unit change on time-ordered electricity did) leaves no remedy to be better by."""
    unmendable = timeline(CLEAN, CLEAN)
    for window in unmendable:
        window["baselines"]["oracle"] = window["baselines"]["no_action"] - 0.01
    result = score(scenario({"helps": True}), unmendable, [])
    helps = check(result, "better than doing nothing")
    assert helps["passed"] is True and "not applicable, no remedy can help" in helps["expect"]
    mendable = timeline(CLEAN, CLEAN)
    for window in mendable:
        window["baselines"]["oracle"] = window["baselines"]["no_action"] + 0.05
    helps = check(score(scenario({"helps": True}), mendable, []), "better than doing nothing")
    assert helps["passed"] is False and "not applicable" not in helps["expect"]


# ---------------------------------------------------------------------------- false alarms


def _control_timeline(findings: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = timeline(CLEAN, CLEAN)
    for window in out:
        window["findings"] = findings.get(window["index"], [])
        window["actions"] = []
    return out


DRIFT = {"kind": "data_drift", "scope": "drift", "features": ["nswprice"], "statistic": "psi"}
MEASURED = {"kind": "concept_drift", "scope": "performance", "statistic": "accuracy_drop"}
ESTIMATED = {
    "kind": "concept_drift",
    "scope": "performance",
    "statistic": "estimated_accuracy_drop",
}
CONSTANT = {"kind": "data_quality", "scope": "quality", "features": ["season"], "statistic": "c"}


def test_a_shuffled_control_counts_every_window_with_a_finding_as_a_false_alarm() -> None:
    control = scenario({"max_false_alarm_windows": 1}, faults=[], shuffle=True)
    result = score(control, _control_timeline({0: [DRIFT], 3: [MEASURED]}), [])
    assert result["false_alarm_window_indexes"] == [0, 3]
    assert not check(result, "at most 1 false-alarm")["passed"]


def test_a_time_ordered_control_counts_only_what_its_real_drift_cannot_justify() -> None:
    control = scenario({"max_false_alarm_windows": 1}, faults=[])
    # the real drift of the inputs and a drop measured on the labels are true detections
    real = _control_timeline({0: [DRIFT], 1: [DRIFT, MEASURED], 2: [DRIFT]})
    result = score(control, real, [])
    assert result["false_alarm_windows"] == 0
    assert check(result, "at most 1 false-alarm")["passed"]
    # a quality finding or a drop only estimated is not what drift explains
    odd = _control_timeline({0: [DRIFT, CONSTANT], 2: [ESTIMATED], 4: [DRIFT]})
    result = score(control, odd, [])
    assert result["false_alarm_window_indexes"] == [0, 2]
    assert not check(result, "at most 1 false-alarm")["passed"]


def test_on_a_time_ordered_control_a_remedy_or_a_repeated_alert_is_a_false_alarm() -> None:
    control = scenario({"max_false_alarm_windows": 0}, faults=[])
    windows = _control_timeline({w: [DRIFT] for w in range(6)})
    windows[1]["actions"] = [{"id": 1, "action": "alert", "state": "done"}]
    windows[2]["actions"] = [{"id": 2, "action": "repair", "state": "done"}]
    windows[4]["actions"] = [{"id": 3, "action": "alert", "state": "done"}]
    windows[5]["actions"] = [{"id": 4, "action": "alert", "state": "done"}]
    actions = [
        {"window": 1, "action": "alert", "outcome": "succeeded", "incident": 1},
        {"window": 2, "action": "repair", "outcome": "succeeded", "incident": 2},
        {"window": 4, "action": "alert", "outcome": "succeeded", "incident": 3},
        {"window": 5, "action": "alert", "outcome": "succeeded", "incident": 1},  # again
    ]
    result = score(control, windows, actions)
    assert result["false_alarm_window_indexes"] == [2, 5]


def test_the_requests_are_cleaned_column_by_column_as_row_by_row() -> None:
    """NaN and None become None, NumPy scalars Python ones, whatever the column's type: the
    requests a simulation sends are the same however they are built."""
    frame = pd.DataFrame(
        {
            "x": [1.5, np.nan, -0.0],
            "n": np.array([1, 2, 3], dtype=np.int64),
            "b": [True, False, True],
            "s": ["a", None, "c"],
            "mixed": ["7", np.nan, 8.25],  # a schema break's text in a number column
        }
    )
    by_column = clean_rows(frame)
    by_row = [clean_row(r) for r in frame.to_dict(orient="records")]
    assert by_column == by_row
    assert [[type(v) for v in r.values()] for r in by_column] == [
        [type(v) for v in r.values()] for r in by_row
    ]
    assert by_column[1] == {"x": None, "n": 2, "b": False, "s": None, "mixed": None}
    # a scenario's own stream, faults injected: the electricity stream with a null burst
    data = prepare(load_scenario("elec_null_burst"), 0)
    stream = data.stream[data.features].copy()
    stream.iloc[::7, 0] = np.nan
    assert clean_rows(stream) == [clean_row(r) for r in stream.to_dict(orient="records")]


def test_the_rows_a_fault_changed_are_told_apart_from_the_clean_ones() -> None:
    """The doing-nothing baseline asks the champion again only about these rows: a changed
    value or a new null is a change, a null that was there before is not; a column whose type
    changed changes every row."""
    clean = pd.DataFrame({"x": [1.0, np.nan, 3.0, 4.0], "s": ["a", "b", None, "d"]})
    broken = clean.copy()
    broken.loc[0, "x"] = np.nan
    broken.loc[3, "s"] = "e"
    assert changed_rows(broken, clean).tolist() == [True, False, False, True]
    assert not changed_rows(clean.copy(), clean).any()
    typed = clean.assign(x=clean["x"].astype(str))
    assert changed_rows(typed, clean).all()
    assert changed_rows(clean[["s", "x"]], clean).all()
