"""Inputs that move while performance falls: the monitor says "data drift with impact"."""

from __future__ import annotations

from datetime import UTC, datetime

from mlwarden.agent.decide import classify
from mlwarden.agent.guards import ModelContext
from mlwarden.agent.policy import Diagnosis, load_policy
from mlwarden.domain import Finding, FindingKind


def _finding(window: int, impact: bool) -> Finding:
    evidence = {"impact": {"metric": "accuracy", "drop": 0.08}} if impact else {}
    return Finding(
        kind=FindingKind.DATA_DRIFT,
        detector="x",
        features=["nswprice"],
        statistic="accuracy_drop" if impact else "psi",
        score=0.3,
        threshold=0.2,
        window=window,
        message="m",
        evidence=evidence,
    )


def _ctx() -> ModelContext:
    return ModelContext(
        model="m",
        now=datetime.now(UTC),
        deployment=None,
        version_health={},
        live_history=[],
        labels_available=10_000,
        past_actions=[],
        action_in_flight=False,
    )


def test_persistent_drift_with_impact_is_covariate_drift_with_a_performance_drop() -> None:
    policy = load_policy().for_model("m")
    findings = [_finding(w, impact=True) for w in (3, 4, 5)]
    diagnosis, _ = classify({FindingKind.DATA_DRIFT}, findings, _ctx(), policy)
    assert diagnosis is Diagnosis.COVARIATE_DRIFT_PERFORMANCE_DROP


def test_drift_with_a_single_window_of_impact_is_still_stable_performance() -> None:
    policy = load_policy().for_model("m")
    findings = [_finding(3, impact=True), _finding(4, impact=False), _finding(5, impact=False)]
    diagnosis, _ = classify({FindingKind.DATA_DRIFT}, findings, _ctx(), policy)
    assert diagnosis is Diagnosis.COVARIATE_DRIFT_STABLE
