"""Scoring a simulation against the scenario's expectations.

Detection: each expected finding must appear (right kind, and the right features when given)
within ``within`` windows of its fault's first window. False alarms: windows with findings, and
actions, outside every fault period (a fault period runs from its first window to two windows
after its last, since detectors and verification lag). Recovery: the served performance over
the fault period against doing nothing (the champion answering the faulty stream) and against
an oracle that knows the fault (the champion answering the clean stream). Diagnosis: each
expected playbook must be the best match of at least one incident.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlwarden.scenarios.spec import Scenario

GRACE_WINDOWS = 2


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


def score(
    scenario: Scenario,
    timeline: list[dict[str, Any]],
    actions: list[dict[str, Any]],
    recovery: dict[str, Any],
    playbooks: Sequence[str | None] = (),
) -> dict[str, Any]:
    """The ``score`` object of summary.json; ``passed`` is False when any expectation failed.

    ``playbooks``: the best-matching playbook of each incident's diagnosis."""
    expect = scenario.expect
    spans = fault_windows(scenario)
    alarm_windows = [
        w["index"] for w in timeline if w["findings"] and not in_fault(w["index"], spans)
    ]
    stray_actions = [
        a for a in actions if a["action"] != "none" and not in_fault(a["window"], spans)
    ]
    result: dict[str, Any] = {
        "false_alarm_windows": len(alarm_windows),
        "false_alarm_window_indexes": alarm_windows,
        "clean_windows": sum(1 for w in timeline if not in_fault(w["index"], spans)),
        "actions_outside_faults": len(stray_actions),
        "recovery": recovery,
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
        checks.append(
            {
                "expect": f"action {action.value}",
                "passed": action.value in taken,
                "taken": taken,
            }
        )
    for playbook in expect.playbooks:
        checks.append(
            {
                "expect": f"an incident diagnosed as {playbook}",
                "passed": playbook in playbooks,
                "diagnosed": sorted({p for p in playbooks if p is not None}),
            }
        )
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
    result["passed"] = all(check["passed"] for check in checks)
    return result
