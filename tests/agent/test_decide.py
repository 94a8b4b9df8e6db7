"""decide(): every row of the decision table, the guards, confidence, modes, cooldowns, limits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from mlwarden.agent.aging import AgedGains
from mlwarden.agent.decide import decide
from mlwarden.agent.guards import Hindsight, ModelContext, PastAction
from mlwarden.agent.incidents import WindowView, evaluate_persistence
from mlwarden.agent.policy import Diagnosis, PersistenceRule, load_policy_text
from mlwarden.domain import ActionKind, Deployment, Finding, FindingKind, Severity

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POLICY = load_policy_text("defaults: {}").for_model("m")


def finding(kind: FindingKind, ratio: float = 4.0, **evidence: object) -> Finding:
    return Finding(
        kind=kind,
        detector="test",
        features=["nswprice"],
        statistic="s",
        score=ratio * 0.1,
        threshold=0.1,
        message=f"{kind} seen",
        evidence=dict(evidence),
    )


def windows(*per_window: list[Finding]) -> list[WindowView]:
    return [WindowView(window=i, findings=list(f)) for i, f in enumerate(per_window)]


def persistent(*kinds_findings: Finding, n: int = 4) -> list[WindowView]:
    return windows([], *([list(kinds_findings)] * n))


def ctx(**kw: object) -> ModelContext:
    deployment = Deployment(
        model="m",
        revision=3,
        live_version=2,
        fallback_version=1,
        actor="t",
        reason="",
        created_at=NOW - timedelta(days=3),
    )
    base: dict[str, object] = {
        "model": "m",
        "now": NOW,
        "deployment": deployment,
        "version_health": {1: "healthy", 2: "healthy"},
        "live_history": [(2, NOW - timedelta(days=3)), (1, NOW - timedelta(days=9))],
        "labels_available": 1000,
    }
    base.update(kw)
    return ModelContext(**base)  # type: ignore[arg-type]


def test_one_noisy_window_is_noise() -> None:
    d = decide(windows([], [finding(FindingKind.DATA_DRIFT, 20)], [], []), ctx(), POLICY)
    assert d.diagnosis is Diagnosis.NOISE and d.action is ActionKind.NONE
    assert "1 of the last 4 windows" in d.rationale


def test_data_quality_falls_back_never_retrains() -> None:
    w = persistent(
        finding(FindingKind.DATA_QUALITY, 5, traffic_share=0.4),
        finding(FindingKind.CONCEPT_DRIFT, 3, performance_drop=0.2),
    )
    d = decide(w, ctx(), POLICY)
    assert d.diagnosis is Diagnosis.DATA_QUALITY
    assert d.action is ActionKind.FALLBACK and d.notify
    assert d.params == {"to_version": 1}


def test_data_quality_without_fallback_disables() -> None:
    dep = ctx().deployment.model_copy(update={"fallback_version": None})  # type: ignore[union-attr]
    d = decide(persistent(finding(FindingKind.DATA_QUALITY, 5)), ctx(deployment=dep), POLICY)
    assert d.action is ActionKind.DISABLE
    assert any(a.action is ActionKind.FALLBACK for a in d.alternatives)


def test_policy_cannot_make_retrain_on_broken_data() -> None:
    policy = load_policy_text("defaults: {actions: {data_quality: [retrain]}}").for_model("m")
    d = decide(persistent(finding(FindingKind.DATA_QUALITY, 5)), ctx(), policy)
    assert d.action is ActionKind.ALERT
    assert "retraining would learn broken data" in d.alternatives[0].reason


def test_regression_after_deploy_rolls_back_to_healthy_version() -> None:
    c = ctx(
        live_history=[(2, NOW - timedelta(minutes=20)), (1, NOW - timedelta(days=9))],
        version_health={1: "healthy", 2: "unknown"},
    )
    d = decide(persistent(finding(FindingKind.ERROR_RATE, 6, traffic_share=0.5)), c, POLICY)
    assert d.diagnosis is Diagnosis.REGRESSION_AFTER_DEPLOY
    assert d.action is ActionKind.ROLLBACK and d.params == {"to_version": 1}
    assert d.severity is Severity.HIGH


def test_never_roll_back_to_an_unhealthy_version() -> None:
    c = ctx(
        live_history=[(2, NOW - timedelta(minutes=20)), (1, NOW - timedelta(days=9))],
        version_health={1: "unhealthy", 2: "unknown"},
    )
    d = decide(persistent(finding(FindingKind.LATENCY, 6)), c, POLICY)
    assert d.action is not ActionKind.ROLLBACK
    assert d.action is ActionKind.DISABLE  # fallback is version 1 too, which is unhealthy
    reasons = " ".join(a.reason for a in d.alternatives)
    assert "version 1 (the previous live version) is unhealthy" in reasons


def test_concept_drift_retrains_with_enough_labels() -> None:
    d = decide(
        persistent(finding(FindingKind.CONCEPT_DRIFT, 4, performance_drop=0.08)), ctx(), POLICY
    )
    assert d.diagnosis is Diagnosis.CONCEPT_DRIFT
    assert d.action is ActionKind.RETRAIN and not d.needs_approval
    assert d.params["min_labels"] == 200


def test_only_a_concept_drift_retrain_learns_after_the_change_alone() -> None:
    """After a change of the relation, the records before it teach what no longer holds; when
    only the inputs moved, the reference still teaches the relation and is kept."""
    changed = ctx(change_window=7, labels_since_change=900)
    concept = decide(
        persistent(finding(FindingKind.CONCEPT_DRIFT, 4, performance_drop=0.08)), changed, POLICY
    )
    assert concept.action is ActionKind.RETRAIN and concept.params["since_window"] == 6
    both = persistent(finding(FindingKind.DATA_DRIFT, 4), finding(FindingKind.CONCEPT_DRIFT, 4))
    covariate = decide(both, changed, POLICY)
    assert covariate.diagnosis is Diagnosis.COVARIATE_DRIFT_PERFORMANCE_DROP
    assert covariate.action is ActionKind.RETRAIN and "since_window" not in covariate.params


def test_no_retrain_without_enough_labels() -> None:
    d = decide(persistent(finding(FindingKind.CONCEPT_DRIFT, 4)), ctx(labels_available=50), POLICY)
    assert d.action is ActionKind.ALERT
    assert "only 50 labelled records, 200 needed" in d.rationale


def test_critical_retrain_needs_approval() -> None:
    f = finding(FindingKind.CONCEPT_DRIFT, 4, performance_drop=0.3)
    d = decide(persistent(f), ctx(), POLICY)
    assert d.severity is Severity.CRITICAL and d.action is ActionKind.RETRAIN
    assert d.needs_approval


def test_covariate_drift_with_drop_retrains_without_drop_alerts() -> None:
    both = persistent(finding(FindingKind.DATA_DRIFT, 4), finding(FindingKind.CONCEPT_DRIFT, 4))
    assert decide(both, ctx(), POLICY).diagnosis is Diagnosis.COVARIATE_DRIFT_PERFORMANCE_DROP
    assert decide(both, ctx(), POLICY).action is ActionKind.RETRAIN
    drift = decide(persistent(finding(FindingKind.DATA_DRIFT, 4)), ctx(), POLICY)
    assert drift.diagnosis is Diagnosis.COVARIATE_DRIFT_STABLE
    assert drift.action is ActionKind.ALERT
    assert drift.severity is Severity.HIGH


def test_latency_not_tied_to_deploy_falls_back() -> None:
    d = decide(persistent(finding(FindingKind.LATENCY, 5)), ctx(), POLICY)
    assert d.diagnosis is Diagnosis.LATENCY_OR_ERRORS
    assert d.action is ActionKind.FALLBACK and d.notify


def test_collapsed_predictions_are_critical_and_fall_back() -> None:
    d = decide(persistent(finding(FindingKind.PREDICTION_DRIFT, 5, collapsed=True)), ctx(), POLICY)
    assert d.diagnosis is Diagnosis.COLLAPSED_PREDICTIONS
    assert d.severity is Severity.CRITICAL and d.action is ActionKind.FALLBACK


def test_late_data_alerts() -> None:
    d = decide(persistent(finding(FindingKind.FRESHNESS, 3)), ctx(), POLICY)
    assert d.diagnosis is Diagnosis.LATE_DATA and d.action is ActionKind.ALERT


def test_low_confidence_only_alerts() -> None:
    policy = load_policy_text("defaults: {min_confidence: 0.95}").for_model("m")
    d = decide(persistent(finding(FindingKind.LATENCY, 1.2), n=3), ctx(), policy)
    assert d.action is ActionKind.ALERT
    assert "below 0.95" in d.alternatives[0].reason


def test_advisory_mode_waits_for_approval() -> None:
    policy = load_policy_text("defaults: {mode: advisory}").for_model("m")
    d = decide(persistent(finding(FindingKind.LATENCY, 5)), ctx(), policy)
    assert d.action is ActionKind.FALLBACK and d.needs_approval


def test_a_remedy_cools_down_per_cause_not_across_causes() -> None:
    """A fallback tried (and undone) for a data-quality incident five minutes ago does not hold
    back the fallback of a service incident (a stuck server); one for an earlier service
    incident does, and so does one with no known scope."""
    stuck = persistent(finding(FindingKind.LATENCY, 5))
    for scope, held in (("quality", False), ("service", True), (None, True)):
        earlier = [PastAction(ActionKind.FALLBACK, NOW - timedelta(minutes=5), "undone", 7, scope)]
        d = decide(
            stuck, ctx(past_actions=earlier, incident_id=9, incident_scope="service"), POLICY
        )
        assert (d.action is ActionKind.ALERT) is held, scope
        assert ("cooldown is 30 min" in d.rationale) is held


def test_cooldown_and_daily_limit() -> None:
    recent = [PastAction(ActionKind.FALLBACK, NOW - timedelta(minutes=5), "done")]
    d = decide(persistent(finding(FindingKind.LATENCY, 5)), ctx(past_actions=recent), POLICY)
    assert d.action is ActionKind.ALERT
    assert "cooldown is 30 min" in d.rationale
    many = [PastAction(ActionKind.ROLLBACK, NOW - timedelta(hours=h + 2), "done") for h in range(6)]
    d = decide(persistent(finding(FindingKind.LATENCY, 5)), ctx(past_actions=many), POLICY)
    assert d.action is ActionKind.ALERT
    assert "daily limit is 6" in d.rationale


def test_never_two_actions_at_once() -> None:
    d = decide(persistent(finding(FindingKind.LATENCY, 5)), ctx(action_in_flight=True), POLICY)
    assert d.action is ActionKind.NONE and "still pending or running" in d.rationale


def test_memory_prefers_the_action_that_worked() -> None:
    policy = load_policy_text(
        "defaults: {actions: {latency_or_errors: [fallback, disable, alert]}}"
    ).for_model("m")
    d = decide(
        persistent(finding(FindingKind.LATENCY, 5)),
        ctx(memory_action=ActionKind.DISABLE, memory_hint="resembles incident 4: disable worked"),
        policy,
    )
    assert d.action is ActionKind.DISABLE
    assert "resembles incident 4" in d.rationale


@pytest.mark.parametrize(
    ("flags", "expected"),
    [([True, False, False, False, False, False], False), ([True] * 3, True), ([False] * 9, False)],
)
def test_sprt(flags: list[bool], expected: bool) -> None:
    assert evaluate_persistence(flags, PersistenceRule(method="sprt")).persistent is expected


def test_a_drop_on_moving_inputs_is_retrained_only_when_a_retrain_then_would_have_helped() -> None:
    """The retrain the drop called for, fitted when it began, is judged on the records since: a
    candidate no better than the champion there is no reason to retrain (an alert instead)."""
    both = persistent(finding(FindingKind.DATA_DRIFT, 4), finding(FindingKind.CONCEPT_DRIFT, 4))
    judged = "accuracy 0.66 vs the champion's 0.67 on the same 1800 labelled requests"
    no_help = ctx(retrain_hindsight=lambda since: Hindsight(False, judged))
    d = decide(both, no_help, POLICY)
    assert d.diagnosis is Diagnosis.COVARIATE_DRIFT_PERFORMANCE_DROP
    assert d.action is ActionKind.ALERT
    refused = [a for a in d.alternatives if a.action is ActionKind.RETRAIN]
    assert refused and "would not have served better since" in refused[0].reason
    assert judged in refused[0].reason
    helps = ctx(retrain_hindsight=lambda since: Hindsight(True, "better by 0.05"))
    assert decide(both, helps, POLICY).action is ActionKind.RETRAIN


def test_a_retrain_that_would_have_helped_is_still_not_asked_where_retrains_age_badly() -> None:
    """The hindsight says a retrain a few windows ago served better since, but past retrains,
    replayed from their second window on, served worse than the champion: an alert instead.
    A concept drift's retrain on the records after its change is not judged so."""
    both = persistent(finding(FindingKind.DATA_DRIFT, 4), finding(FindingKind.CONCEPT_DRIFT, 4))
    badly = AgedGains("accuracy", 2, [(1, 3, -0.1, 1000), (1, 4, -0.1, 1000), (2, 4, 0.05, 1000)])
    asked: list[bool] = []

    def aging(gains: AgedGains) -> Callable[[], AgedGains]:
        def replayed() -> AgedGains:
            asked.append(True)
            return gains

        return replayed

    helps = {"retrain_hindsight": lambda since: Hindsight(True, "better by 0.05")}
    d = decide(both, ctx(**helps, retrain_aging=aging(badly)), POLICY)
    assert d.diagnosis is Diagnosis.COVARIATE_DRIFT_PERFORMANCE_DROP
    assert d.action is ActionKind.ALERT and asked == [True]
    refused = [a for a in d.alternatives if a.action is ActionKind.RETRAIN]
    assert refused and "served -0.0250 accuracy against the champion" in refused[0].reason
    assert "a retrain ages badly" in refused[0].reason
    well = AgedGains("accuracy", 2, [(c[0], c[1], -c[2], c[3]) for c in badly.cells])
    assert (
        decide(both, ctx(**helps, retrain_aging=aging(well)), POLICY).action is ActionKind.RETRAIN
    )
    flip = persistent(finding(FindingKind.CONCEPT_DRIFT, 4, performance_drop=0.08))
    asked.clear()
    known = {"change_window": 7, "labels_since_change": 900}
    d = decide(flip, ctx(**known, **helps, retrain_aging=aging(badly)), POLICY)
    assert d.action is ActionKind.RETRAIN and d.params["since_window"] == 6 and asked == []


def _judged(asked: list[int | None], helps: bool, waiting: bool = False) -> object:
    def hindsight(since: int | None) -> Hindsight:
        asked.append(since)
        return Hindsight(helps, "accuracy 0.70 vs 0.71", {"hindsight_from_window": 8}, waiting)

    return hindsight


def test_a_concept_drift_without_a_change_point_is_retrained_only_when_that_would_have_helped() -> (
    None
):
    """A drop dated to the first window has no change point to learn after: its retrain learns
    the reference and the recent records, as a drop on moving inputs does, and is judged in
    hindsight the same way (on the flights in time order the spring's drop, dated to window
    0, asked a retrain at window 4 that would not have served better)."""
    drop = persistent(finding(FindingKind.CONCEPT_DRIFT, 4, performance_drop=0.08))
    asked: list[int | None] = []
    no_help = ctx(change_window=0, labels_since_change=900, retrain_hindsight=_judged(asked, False))
    d = decide(drop, no_help, POLICY)
    assert d.diagnosis is Diagnosis.CONCEPT_DRIFT and d.action is ActionKind.ALERT
    assert asked == [None]  # the retrain it replays learns the reference and recent records
    refused = [a for a in d.alternatives if a.action is ActionKind.RETRAIN]
    assert refused and "a retrain at window 8 would not have served better" in refused[0].reason
    helps = ctx(change_window=0, labels_since_change=900, retrain_hindsight=_judged([], True))
    d = decide(drop, helps, POLICY)
    assert d.action is ActionKind.RETRAIN and "since_window" not in d.params


def test_a_concept_drift_retrain_after_its_change_is_asked_at_once_unless_lasting() -> None:
    """A retrain on the records after the change alone is asked at once by default (a real
    flip is learnt only from them); with ``concept_hindsight: lasting`` only once the candidate
    fitted on the first window after the change has served every window since better."""
    drop = persistent(finding(FindingKind.CONCEPT_DRIFT, 4, performance_drop=0.08))
    known = {"change_window": 7, "labels_since_change": 900}
    asked: list[int | None] = []
    d = decide(drop, ctx(**known, retrain_hindsight=_judged(asked, False)), POLICY)
    assert d.action is ActionKind.RETRAIN and d.params["since_window"] == 6 and asked == []
    lasting = load_policy_text("defaults: {retrain: {concept_hindsight: lasting}}").for_model("m")
    d = decide(drop, ctx(**known, retrain_hindsight=_judged(asked, False)), lasting)
    assert d.diagnosis is Diagnosis.CONCEPT_DRIFT and d.action is ActionKind.ALERT
    assert asked == [6]  # replayed as the retrain would learn: after window 6 alone
    refused = [a for a in d.alternatives if a.action is ActionKind.RETRAIN]
    assert refused and "a retrain at window 8 would not have served better" in refused[0].reason
    waiting = ctx(**known, retrain_hindsight=_judged(asked, False, waiting=True))
    d = decide(drop, waiting, lasting)
    assert d.action is ActionKind.ALERT
    refused = [a for a in d.alternatives if a.action is ActionKind.RETRAIN]
    assert refused and "cannot be judged on the records since the change yet" in refused[0].reason
    d = decide(drop, ctx(**known, retrain_hindsight=_judged(asked, True)), lasting)
    assert d.action is ActionKind.RETRAIN and d.params["since_window"] == 6
