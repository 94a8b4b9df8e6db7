"""Scoring a simulation against the scenario's expectations.

Detection: each expected finding must appear (right kind, and the right features when given)
within ``within`` windows of its fault's first window. False alarms: windows outside every fault
period (a fault period runs from its first window to two windows after its last, since
detectors and verification lag) with a finding the unfaulted stream cannot justify, and actions
outside them (see :func:`false_alarm`). A shuffled stream is stationary by construction, so on
it every finding outside the faults is a false alarm. A stream in time order drifts for real
(electricity's prices, a season of bike rentals): its input and output drift, and a performance
change measured on its labels, are what the data shows, true detections; a quality, service or
anomaly finding, a performance drop only estimated, a remedial action, or a second alert for an
incident already alerted is not. Recovery: the served performance over
the fault period against doing nothing (the champion answering the faulty stream) and against
an oracle that knows the fault (the champion answering the clean stream). Harm: the served
metric with mlwarden minus doing nothing, over the fault periods and over the whole stream,
with refused and failed requests counted as errors (see docs/scenarios.md). Diagnosis: each
expected playbook must be the best match of at least one incident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlwarden.domain import Severity
from mlwarden.scenarios.spec import Expectation, ExpectedAction, Scenario

GRACE_WINDOWS = 2

# How much worse than doing nothing still counts as no harm, when the scenario names no
# tolerance: accuracy points, or a share of doing nothing's RMSE.
TOLERANCE = {"accuracy": 0.005, "rmse": 0.01}


def fault_windows(scenario: Scenario) -> list[tuple[int, int]]:
    """(first, last) window of each fault, with the grace period after its end."""
    spans = []
    for fault in scenario.faults:
        first = fault.start // scenario.window
        end = scenario.stream_length if fault.end is None else fault.end
        last = min(scenario.windows - 1, (end - 1) // scenario.window + GRACE_WINDOWS)
        spans.append((first, last))
    return spans


def in_fault(window: int, spans: list[tuple[int, int]]) -> bool:
    return any(first <= window <= last for first, last in spans)


# what a stream in time order really shows without a fault: its inputs and outputs move
JUSTIFIED_SCOPES = frozenset({"drift", "performance"})
_SCOPE_OF_KIND = {
    "data_drift": "drift",
    "prediction_drift": "drift",
    "concept_drift": "performance",
}


def justified(finding: Mapping[str, Any]) -> bool:
    """A finding outside the faults of a time-ordered stream that the data itself justifies:
    drift of the inputs or outputs, or a performance change measured on the labels (an
    estimated drop, from the model's own confidence, is not a measurement).

    >>> justified({"kind": "data_drift", "scope": "drift", "statistic": "psi"})
    True
    >>> justified({"kind": "concept_drift", "scope": "performance", "statistic": "accuracy_drop"})
    True
    >>> justified({"kind": "concept_drift", "statistic": "estimated_accuracy_drop"})
    False
    >>> justified({"kind": "data_quality", "scope": "quality", "statistic": "constant"})
    False
    >>> justified({"kind": "prediction_drift", "scope": "service", "statistic": "top_share"})
    False
    """
    scope = finding.get("scope") or _SCOPE_OF_KIND.get(str(finding.get("kind")))
    if scope not in JUSTIFIED_SCOPES:
        return False
    return not str(finding.get("statistic") or "").startswith("estimated_")


def false_alarm(
    scenario: Scenario, window: Mapping[str, Any], repeated_alert: bool = False
) -> bool:
    """Whether a window outside every fault period is a false alarm (see the module): any
    finding on a shuffled stream; on a stream in time order, a finding the data does not
    justify (:func:`justified`), a remedial action, or an alert repeated for an incident
    already alerted (``repeated_alert``)."""
    findings = window.get("findings") or []
    if scenario.shuffle:
        return bool(findings)
    remedial = any(a.get("action") not in ("alert", "none") for a in window.get("actions") or [])
    return remedial or repeated_alert or not all(justified(f) for f in findings)


def _repeated_alerts(actions: Sequence[Mapping[str, Any]]) -> set[int]:
    """The windows of the alerts sent for an incident that had been alerted before."""
    alerted: set[Any] = set()
    repeats: set[int] = set()
    for action in sorted(actions, key=lambda a: a["window"]):
        if action["action"] != "alert" or action.get("incident") is None:
            continue
        if action["incident"] in alerted:
            repeats.add(int(action["window"]))
        alerted.add(action["incident"])
    return repeats


def score(
    scenario: Scenario,
    timeline: list[dict[str, Any]],
    actions: list[dict[str, Any]],
    incidents: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The ``score`` object of summary.json; ``passed`` is False when any expectation failed.

    ``incidents``: as summary.json lists them (``playbook``: the best-matching playbook of the
    incident's diagnosis; ``max_severity``: the highest severity it reached)."""
    expect = scenario.expect
    spans = fault_windows(scenario)
    repeats = _repeated_alerts(actions)
    alarm_windows = [
        w["index"]
        for w in timeline
        if not in_fault(w["index"], spans) and false_alarm(scenario, w, w["index"] in repeats)
    ]
    stray_actions = [
        a for a in actions if a["action"] != "none" and not in_fault(a["window"], spans)
    ]
    harmed = harm(scenario, timeline)
    result: dict[str, Any] = {
        "false_alarm_windows": len(alarm_windows),
        "false_alarm_window_indexes": alarm_windows,
        "clean_windows": sum(1 for w in timeline if not in_fault(w["index"], spans)),
        "actions_outside_faults": len(stray_actions),
        "recovery": recovery(scenario, timeline),
        "harm": harmed,
        "checks": [],
    }
    if expect is None:
        result["passed"] = True
        return result
    checks: list[dict[str, Any]] = result["checks"]
    first_fault = min((f.start for f in scenario.faults), default=0) // scenario.window
    for wanted in expect.findings:
        starts = [
            f.start // scenario.window
            for f in scenario.faults
            if not wanted.features or f.feature in wanted.features or f.feature is None
        ] or [first_fault]
        start = min(starts)
        hit = None
        for window in timeline:
            if window["index"] < start or window["index"] > start + wanted.within:
                continue
            for finding in window["findings"]:
                if finding["kind"] != wanted.kind.value:
                    continue
                if wanted.features and not set(wanted.features) <= set(finding["features"]):
                    continue
                hit = window["index"]
                break
            if hit is not None:
                break
        checks.append(
            {
                "expect": f"{wanted.kind.value} finding"
                + (f" on {', '.join(wanted.features)}" if wanted.features else "")
                + f" within {wanted.within} windows of window {start}",
                "passed": hit is not None,
                "detected_window": hit,
                "delay_windows": None if hit is None else hit - start,
            }
        )
    taken = [a["action"] for a in actions if a["action"] not in {"none"}]
    for action in expect.actions:
        if isinstance(action, ExpectedAction):
            checks.append(_action_check(scenario, action, actions))
        else:
            checks.append(
                {
                    "expect": f"action {action.value}",
                    "passed": action.value in taken,
                    "taken": taken,
                }
            )
    for kinds, during in ((expect.never, False), (expect.never_during_faults, True)):
        if not kinds:
            continue
        forbidden = {kind.value for kind in kinds}
        counted = [
            a["action"]
            for a in actions
            if a["action"] != "none" and (not during or in_fault(a["window"], spans))
        ]
        checks.append(
            {
                "expect": f"never {', '.join(sorted(forbidden))}"
                + (" in the fault periods" if during else "")
                + " (neither taken nor asked for)",
                "passed": not forbidden & set(counted),
                "taken": counted,
            }
        )
    playbooks = [incident.get("playbook") for incident in incidents]
    for playbook in expect.playbooks:
        checks.append(
            {
                "expect": f"an incident diagnosed as {playbook}",
                "passed": playbook in playbooks,
                "diagnosed": sorted({p for p in playbooks if p is not None}),
            }
        )
    if expect.incidents is not None:
        checks.extend(_incident_checks(expect, incidents))
    if expect.max_actions is not None:
        remedies = [a for a in taken if a != "alert"]
        checks.append(
            {
                "expect": f"at most {expect.max_actions} remedial actions",
                "passed": len(remedies) <= expect.max_actions,
                "taken": remedies,
            }
        )
    if expect.max_false_alarm_windows is not None:
        checks.append(
            {
                "expect": f"at most {expect.max_false_alarm_windows} false-alarm windows",
                "passed": len(alarm_windows) <= expect.max_false_alarm_windows,
                "windows": alarm_windows,
            }
        )
    if expect.recovery:
        recovered = any(a["outcome"] == "succeeded" for a in actions if a["action"] != "alert")
        checks.append({"expect": "recovery verified", "passed": recovered})
    if expect.metric is not None:
        checks.append(_metric_check(expect, harmed))
    if expect.harm:
        checks.append(
            {
                "expect": f"no worse than doing nothing (tolerance {harmed['tolerance']} "
                + ("accuracy" if harmed["metric"] == "accuracy" else "of the RMSE")
                + ")",
                "passed": not harmed["worse"],
                "fault_periods": harmed["fault_periods"],
                "whole_stream": harmed["whole_stream"],
            }
        )
    if expect.helps:
        periods = harmed["fault_periods"]
        # the oracle is the model on the clean stream: what a perfect mend of the fault serves
        mended = _loss(metric_of_timeline(timeline), {**periods, "mlwarden": periods["oracle"]})
        can_help = mended is None or -mended > harmed["tolerance"]
        checks.append(
            {
                "expect": f"better than doing nothing over the fault periods (by more than "
                f"{harmed['tolerance']})"
                + (
                    ""
                    if can_help
                    else ": not applicable, no remedy can help here (the "
                    f"unfaulted stream serves {periods['oracle']}, doing nothing "
                    f"{periods['no_action']})"
                ),
                "passed": harmed["helped"] or not can_help,
                "fault_periods": periods,
            }
        )
    result["passed"] = all(check["passed"] for check in checks)
    return result


def _start_window(scenario: Scenario, fault_kind: str | None) -> int:
    """The first window of the named fault (default: of the earliest fault; 0 without one)."""
    starts = [f.start for f in scenario.faults if fault_kind is None or f.kind == fault_kind]
    return min(starts, default=0) // scenario.window


def _action_check(
    scenario: Scenario, wanted: ExpectedAction, actions: list[dict[str, Any]]
) -> dict[str, Any]:
    kinds = [kind.value for kind in wanted.kinds]
    start = _start_window(scenario, wanted.fault)
    matching = [
        a
        for a in actions
        if a["action"] in kinds
        and (wanted.within is None or start <= a["window"] <= start + wanted.within)
    ]
    hit = [a for a in matching if wanted.outcome is None or a["outcome"] == wanted.outcome]
    text = f"action {' or '.join(kinds)}"
    if wanted.within is not None:
        text += f" within {wanted.within} windows of window {start}"
    if wanted.outcome is not None:
        text += f", {wanted.outcome}"
    return {
        "expect": text,
        "passed": bool(hit),
        "taken": [f"{a['action']}@{a['window']}→{a['outcome']}" for a in actions],
    }


def _incident_checks(
    expect: Expectation, incidents: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    wanted = expect.incidents
    assert wanted is not None
    count = len(incidents)
    worst = Severity.worst(i["max_severity"] for i in incidents if i.get("max_severity"))
    seen = {"incidents": count, "worst_severity": None if worst is None else worst.value}
    checks = []
    for label, bound, ok in (
        ("exactly", wanted.count, lambda b: count == b),
        ("at least", wanted.min, lambda b: count >= b),
        ("at most", wanted.max, lambda b: count <= b),
    ):
        if bound is not None:
            checks.append({"expect": f"{label} {bound} incidents", "passed": ok(bound), **seen})
    if wanted.severity is not None:
        reached = worst is not None and worst.at_least(wanted.severity)
        checks.append(
            {
                "expect": f"an incident of severity {wanted.severity.value} or more",
                "passed": reached,
                **seen,
            }
        )
    if wanted.max_severity is not None:
        within = worst is None or wanted.max_severity.at_least(worst)
        checks.append(
            {
                "expect": f"no incident above severity {wanted.max_severity.value}",
                "passed": within,
                **seen,
            }
        )
    return checks


def _metric_check(expect: Expectation, harmed: dict[str, Any]) -> dict[str, Any]:
    bounds = expect.metric
    assert bounds is not None
    served = harmed["fault_periods"]["mlwarden"]
    parts = []
    if bounds.min is not None:
        parts.append(f">= {bounds.min}")
    if bounds.max is not None:
        parts.append(f"<= {bounds.max}")
    passed = served is not None and (
        (bounds.min is None or served >= bounds.min)
        and (bounds.max is None or served <= bounds.max)
    )
    return {
        "expect": f"served {harmed['metric']} over the fault periods {' and '.join(parts)}",
        "passed": passed,
        "served": served,
    }


def _aggregate(metric: str, values: list[float | None]) -> float | None:
    """Windows are the same size, so the pooled metric is the mean accuracy, or the root of
    the mean squared RMSE."""
    kept = [v for v in values if v is not None]
    if not kept:
        return None
    if metric == "rmse":
        return round(float(np.sqrt(np.mean(np.square(kept)))), 4)
    return round(float(np.mean(kept)), 4)


def _served(metric: str, windows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "mlwarden": _aggregate(metric, [w["metrics"].get(metric) for w in windows]),
        "no_action": _aggregate(metric, [w["baselines"]["no_action"] for w in windows]),
        "oracle": _aggregate(metric, [w["baselines"]["oracle"] for w in windows]),
        "windows": [w["index"] for w in windows],
    }


def recovery(scenario: Scenario, timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """Performance over the fault periods: by mlwarden, by doing nothing, by an oracle."""
    spans = fault_windows(scenario)
    metric = metric_of_timeline(timeline)
    return {
        "metric": metric,
        **_served(metric, [w for w in timeline if in_fault(w["index"], spans)]),
    }


def _loss(metric: str, served: dict[str, Any]) -> float | None:
    """How much worse mlwarden served than doing nothing: accuracy points, or a share of
    doing nothing's RMSE. Negative when mlwarden did better."""
    ours, theirs = served["mlwarden"], served["no_action"]
    if ours is None or theirs is None:
        return None
    if metric == "rmse":
        return round((ours - theirs) / theirs, 4) if theirs else round(ours - theirs, 4)
    return round(theirs - ours, 4)


def metric_of_timeline(timeline: list[dict[str, Any]]) -> str:
    return timeline[0]["metric_name"] if timeline else "accuracy"


def harm(scenario: Scenario, timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """mlwarden against doing nothing, over the fault periods (the whole stream when the
    scenario injects no fault: its natural drift is the fault) and over the whole stream.

    ``worse``: mlwarden served worse than doing nothing beyond the tolerance in either.
    ``helped``: it served better beyond the tolerance over the fault periods, and not worse
    over the whole stream."""
    metric = metric_of_timeline(timeline)
    expect = scenario.expect
    tolerance = (
        expect.tolerance
        if expect is not None and expect.tolerance is not None
        else TOLERANCE[metric]
    )
    spans = fault_windows(scenario)
    inside = [w for w in timeline if in_fault(w["index"], spans)] if scenario.faults else timeline
    periods = {"fault_periods": _served(metric, inside), "whole_stream": _served(metric, timeline)}
    for served in periods.values():
        loss = _loss(metric, served)
        served["loss"] = loss
        served["delta"] = (
            None
            if served["mlwarden"] is None or served["no_action"] is None
            else round(served["mlwarden"] - served["no_action"], 4)
        )
    losses = [p["loss"] for p in periods.values() if p["loss"] is not None]
    fault_loss = periods["fault_periods"]["loss"]
    worse = any(loss > tolerance for loss in losses)
    return {
        "metric": metric,
        "tolerance": tolerance,
        **periods,
        "worse": worse,
        "helped": fault_loss is not None and -fault_loss > tolerance and not worse,
    }
