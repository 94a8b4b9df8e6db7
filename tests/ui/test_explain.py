"""The agent's decisions as the dashboard says them: sentences a person reads, the numbers in a
table, nothing of the machine rationale left over; decisions made by the real ``decide``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mlwarden.agent.decide import decide
from mlwarden.agent.guards import ModelContext
from mlwarden.agent.incidents import WindowView
from mlwarden.agent.policy import load_policy_text
from mlwarden.domain import Deployment, Finding, FindingKind
from mlwarden.ui.explain import explain_decision, readable_timeline

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def decided(
    kind: FindingKind, policy: str = "defaults: {}", ratio: float = 4.0, n: int = 4, **evidence: Any
) -> dict[str, Any]:
    """A real decision about ``n`` windows in a row with a ``kind`` finding ``ratio`` times its
    threshold, as the store returns it (with an id)."""
    found = Finding(
        kind=kind,
        detector="test",
        features=["nswprice"],
        statistic="s",
        score=ratio * 0.1,
        threshold=0.1,
        message="seen",
        evidence=evidence,
    )
    windows = [WindowView(window=0, findings=[])] + [
        WindowView(window=i, findings=[found]) for i in range(1, n + 1)
    ]
    deployment = Deployment(
        model="m",
        revision=3,
        live_version=2,
        fallback_version=1,
        actor="t",
        reason="",
        created_at=NOW - timedelta(days=3),
    )
    ctx = ModelContext(
        model="m",
        now=NOW,
        deployment=deployment,
        version_health={1: "healthy", 2: "healthy"},
        live_history=[(2, NOW - timedelta(days=3)), (1, NOW - timedelta(days=9))],
        labels_available=1000,
    )
    decision = decide(windows, ctx, load_policy_text(policy).for_model("m"))
    return {"id": 7, **decision.model_dump(mode="json")}


def _text(view: Any) -> str:
    return " ".join([view.summary, *view.reasons])


def test_a_critical_retrain_reads_as_sentences_with_its_numbers_in_a_table() -> None:
    decision = decided(FindingKind.CONCEPT_DRIFT, performance_drop=0.3)
    assert decision["needs_approval"] and len(decision["rationale"]) > 200
    view = explain_decision(decision)
    assert view.summary == (
        "The agent wants to retrain the model on recent labelled data, and waits for an "
        "operator's approval."
    )
    assert (
        "The diagnosis is concept drift: performance dropped while the inputs stayed stable."
        in (view.reasons)
    )
    assert any(r.startswith("It is critical: ") for r in view.reasons)
    assert "The policy asks a person to approve a retrain at critical severity." in view.reasons
    rows = {label: (value, rule) for label, value, rule in view.numbers}
    assert rows["windows with concept drift findings"] == (
        "4 of the last 5",
        "persistent from 3 of 5",
    )
    assert rows["performance drop"] == ("0.3", "critical from 0.15")
    assert rows["confidence"][0] == f"{decision['confidence']:.2f}"
    # no machine wording left in the sentences: the numbers are in the table only
    for machine in (">=", "rule:", ";", "confidence 1"):
        assert machine not in _text(view)


def test_noise_and_refused_alternatives_are_said_plainly() -> None:
    noise = explain_decision(
        {
            "id": 1,
            "action": "none",
            "alternatives": [],
            "rationale": (
                "Noise, not a persistent failure: data_drift: 0 of the last 5 windows flagged "
                "(rule: 3 of 5). Monitoring more windows."
            ),
        }
    )
    assert noise.summary.startswith("No action: the findings did not persist")
    assert noise.numbers == [
        ("windows with data drift findings", "0 of the last 5", "persistent from 3 of 5")
    ]
    assert noise.reasons == []
    policy = "defaults: {min_confidence: 0.95}"
    low = explain_decision(decided(FindingKind.LATENCY, policy, ratio=1.2, n=3))
    assert low.summary == "The agent alerted the people on call and changed nothing else."
    assert any(
        r.startswith("Considered and not chosen: to switch to the fallback version (confidence")
        for r in low.reasons
    )
    assert "Not fallback" not in _text(low)


def test_a_step_the_explainer_does_not_know_is_kept_as_written() -> None:
    view = explain_decision(
        {
            "id": 2,
            "action": "alert",
            "alternatives": [],
            "rationale": (
                "Alert the people on call. late_data: 3 of the last 5 windows flagged "
                "(rule: 3 of 5); a new note from a future agent; confidence 0.80."
            ),
        }
    )
    assert "A new note from a future agent." in view.reasons


def test_the_timeline_says_a_decision_in_one_sentence() -> None:
    decision = decided(FindingKind.LATENCY)
    timeline = [
        {"event": "opened", "text": "latency in window 1"},
        {"event": "decision", "text": f"#7: {decision['rationale']}"},
    ]
    shown = readable_timeline(timeline, [decision])
    assert shown[0] == timeline[0]
    assert shown[1]["text"] == explain_decision(decision).summary
    assert shown[1]["text"].startswith("The agent chose to switch to the fallback version")
