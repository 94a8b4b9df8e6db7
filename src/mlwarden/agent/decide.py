"""``decide``: from a model's recent windows to one Decision, following the policy and the guards.

The steps, in order, each leaving its sentence in the rationale:

1. another action in flight on the model → wait (no two actions on one model at once);
2. persistence rule per finding kind → nothing persistent is **noise** (monitor more);
3. the persistent kinds and the context give the **diagnosis** (a row of the decision table);
4. severity from effect size, share of traffic and performance impact;
5. the policy's action for the diagnosis (failure memory may prefer the action that worked);
6. guards may refuse it, and the next alternative is tried (rollback → fallback → disable →
   alert; retrain → alert); everything refused is kept as an alternative with its reason;
7. low confidence, cooldowns and the daily limit reduce a remedy to an alert;
8. advisory mode, or the approval rules of autonomous mode, make the remedy wait for approval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field

from mlwarden.agent import guards as g
from mlwarden.agent.evidence import Weighing
from mlwarden.agent.incidents import (
    Persistence,
    WindowView,
    assess_severity,
    effect_ratio,
    is_collapse,
    kinds_persistence,
    qualifying,
)
from mlwarden.agent.policy import Diagnosis, ModelPolicy
from mlwarden.agent.remedies.registry import remedial_kinds, weighed_kinds
from mlwarden.domain import ActionKind, Finding, FindingKind, Severity


class Alternative(BaseModel):
    """An action the agent considered and did not choose, and why."""

    action: ActionKind
    reason: str


class Decision(BaseModel):
    """What the agent chose for a model, why, and how sure it is."""

    model: str
    diagnosis: Diagnosis
    action: ActionKind
    notify: bool = False  # send an alert along with the action
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Severity = Severity.LOW
    confidence: float = 0.0
    persistent: bool = False
    needs_approval: bool = False
    mode: str = "autonomous"
    alternatives: list[Alternative] = Field(default_factory=list)
    rationale: str = ""
    kinds: list[FindingKind] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)

    @property
    def acts(self) -> bool:
        return self.action is not ActionKind.NONE


_PERFORMANCE = {FindingKind.CONCEPT_DRIFT}
_SERVICE = {FindingKind.LATENCY, FindingKind.ERROR_RATE}
_INPUT = {FindingKind.DATA_DRIFT, FindingKind.PREDICTION_DRIFT, FindingKind.ANOMALY}


def classify(
    persistent: set[FindingKind],
    findings: Sequence[Finding],
    ctx: g.ModelContext,
    policy: ModelPolicy,
) -> tuple[Diagnosis, str]:
    """Map the persistent finding kinds (and the deployment history) to a row of the table."""
    if not persistent:
        return Diagnosis.NOISE, "no finding kind persisted"
    kinds = ", ".join(sorted(k.value for k in persistent))
    if FindingKind.DATA_QUALITY in persistent:
        return Diagnosis.DATA_QUALITY, f"data-quality checks keep failing ({kinds})"
    if any(is_collapse(f) for f in findings if f.kind in persistent):
        return Diagnosis.COLLAPSED_PREDICTIONS, "predictions collapsed onto a constant"
    # a performance drop: measured against labels or estimated, with the inputs stable
    # (concept drift) or moving (the monitor reports that as data drift "with impact")
    impact_windows = {
        f.window
        for f in findings
        if f.kind is FindingKind.DATA_DRIFT and f.evidence.get("impact") is not None
    }
    needed = policy.persistence.k or 1
    dropped = FindingKind.CONCEPT_DRIFT in persistent or len(impact_windows) >= needed
    changed = ctx.live_changed_at
    recent_deploy = (
        changed is not None
        and ctx.now - changed <= timedelta(minutes=policy.deploy_window_minutes)
        and (
            ctx.windows_before_change is None
            or ctx.windows_before_change <= policy.deploy_window_windows
        )
    )
    live = ctx.deployment.live_version if ctx.deployment else None
    # a version that already served clean windows (known healthy) is not blamed for a new failure
    suspect = ctx.version_health.get(live or -1) != "healthy"
    # a drop right after a new version went live is blamed on that version first, whatever the
    # inputs do meanwhile: real inputs drift all the time, a bad deploy is undone by a rollback
    if recent_deploy and suspect and (dropped or persistent & _SERVICE) and ctx.rollback_target():
        minutes = (ctx.now - changed).total_seconds() / 60 if changed else 0.0
        return Diagnosis.REGRESSION_AFTER_DEPLOY, (
            f"{kinds} began after version {live} went live {minutes:.0f} min ago"
        )
    if persistent & _SERVICE:
        return Diagnosis.LATENCY_OR_ERRORS, f"{kinds} not tied to a recent version change"
    if dropped:
        if persistent & {FindingKind.DATA_DRIFT}:
            return Diagnosis.COVARIATE_DRIFT_PERFORMANCE_DROP, (
                "inputs drifted and performance dropped"
            )
        return Diagnosis.CONCEPT_DRIFT, "performance dropped while the inputs stayed stable"
    if persistent & _INPUT:
        return Diagnosis.COVARIATE_DRIFT_STABLE, "inputs drifted while performance held"
    if FindingKind.FRESHNESS in persistent:
        return Diagnosis.LATE_DATA, "data is arriving late"
    return Diagnosis.COVARIATE_DRIFT_STABLE, f"{kinds} persisted"


def confidence_of(persistence: Sequence[Persistence], findings: Sequence[Finding]) -> float:
    """0.6 x how persistent + 0.4 x how large the effect (score/threshold of 3 counts as 1).

    Effect strength is ``log(ratio) / log(3)`` clipped to [0, 1]: a finding on its threshold adds
    nothing, one three times past it adds the full 0.4.
    """
    strength = max([0.0, *(p.strength for p in persistence)])
    ratios = [effect_ratio(f) for f in findings]
    ratio = max([1.0, *(r for r in ratios if math.isfinite(r))], default=1.0)
    if any(not math.isfinite(r) for r in ratios):
        ratio = 3.0
    effect = min(1.0, max(0.0, math.log(ratio) / math.log(3.0)))
    return round(0.6 * strength + 0.4 * effect, 3)


def _substitutes(action: ActionKind, policy: ModelPolicy) -> list[ActionKind]:
    if action is ActionKind.REPAIR:
        return []  # no repair fits: the policy's next remedy is tried
    if action is ActionKind.ROLLBACK:
        return [ActionKind.FALLBACK, ActionKind.DISABLE, ActionKind.ALERT]
    if action is ActionKind.FALLBACK:
        return (
            [ActionKind.DISABLE, ActionKind.ALERT]
            if policy.disable_without_fallback
            else [ActionKind.ALERT]
        )
    return [ActionKind.ALERT]


def _guard(
    action: ActionKind,
    diagnosis: Diagnosis,
    windows: Sequence[WindowView],
    ctx: g.ModelContext,
    policy: ModelPolicy,
) -> tuple[str | None, dict[str, Any]]:
    """The reason ``action`` is refused (or None) and the parameters it would run with."""
    if action is ActionKind.ROLLBACK:
        reason = g.rollback_target_healthy(ctx)
        target = ctx.rollback_target()
        params: dict[str, Any] = {"to_version": target}
        if target is not None and ctx.version_health.get(target) != "healthy":
            params["unproven"] = True  # only the evidence can justify it (see the guard)
        return reason, params
    if action is ActionKind.RETRAIN:
        recent = list(windows)[-policy.persistence.n :]
        reason = g.no_retrain_on_broken_data(recent) or g.enough_labels(
            ctx, policy.retrain.min_labels
        )
        settings = policy.retrain.model_dump()
        if (
            diagnosis is Diagnosis.CONCEPT_DRIFT
            and ctx.change_window
            and ctx.labels_since_change is not None
        ):
            # learn the new relation only: the records after the change point (when the
            # windows' stored bounds let them be read). Where the relation held and only the
            # inputs moved, the reference keeps teaching it: on time-ordered electricity a
            # candidate fitted to a few weeks of records alone served 1-14 points worse than
            # the champion two to four weeks later, one fitted to the reference and the recent
            # records stayed level with it or better (see docs/benchmarks.md)
            settings["since_window"] = ctx.change_window - 1
        since = settings.get("since_window")
        judged = diagnosis is Diagnosis.COVARIATE_DRIFT_PERFORMANCE_DROP or (
            diagnosis is Diagnosis.CONCEPT_DRIFT
            and (
                ctx.change_window == 0
                or (since is not None and policy.retrain.concept_hindsight == "lasting")
            )
        )
        if (
            reason is None
            and ctx.change_window
            and diagnosis in (Diagnosis.CONCEPT_DRIFT, Diagnosis.COVARIATE_DRIFT_PERFORMANCE_DROP)
        ):
            # a drop with a change point must lie below the champion's own worst window before
            # it: within that range it is natural drift (a season), and a retrain fitted on it
            # learns one stretch of the season (agent.own_range)
            reason = g.drop_beyond_own_range(ctx)
        if reason is None and judged:
            # the same retrain, fitted a few windows ago, must have served the records since
            # better than the champion (agent.hindsight). A concept drift dated to the first
            # window has no change point to learn after: its retrain learns the reference and
            # the recent records, as a drop on moving inputs does, and is judged so; one that
            # learns the records after its change alone only when the policy says "lasting"
            reason = g.retrain_would_have_helped(ctx, since)
            if reason is None and since is None:
                # and a retrain must last: past ones, replayed, must not have served worse
                # than the champion once they were as old as a promoted one is (agent.aging)
                reason = g.retrains_age_well(ctx)
        return reason, settings
    if action is ActionKind.FALLBACK:
        dep = ctx.deployment
        if dep is None or dep.fallback_version is None:
            return "no fallback version is configured", {}
        if ctx.version_health.get(dep.fallback_version) == "unhealthy":
            return f"fallback version {dep.fallback_version} is unhealthy", {}
        if dep.live_version == dep.fallback_version:
            return f"version {dep.fallback_version} already serves as live", {}
        return None, {"to_version": dep.fallback_version}
    if action is ActionKind.REPAIR:
        broken = [
            f
            for w in list(windows)[-policy.persistence.n :]
            for f in qualifying(w.findings, policy)
            if f.kind is FindingKind.DATA_QUALITY
        ]
        plan = ctx.plan_repair(broken) if ctx.plan_repair is not None else {}
        if not plan:
            return "no input repair fits these data-quality findings", {}
        live = ctx.deployment.live_version if ctx.deployment else None
        rules = {name: rule.model_dump(exclude_none=True) for name, rule in plan.items()}
        return None, {"input_repair": rules, "version": live}
    if action is ActionKind.DISABLE:
        if ctx.deployment is None or ctx.deployment.disabled:
            return "the model is not deployed or already disabled", {}
        return None, {}
    if action in (ActionKind.CANARY, ActionKind.SHADOW, ActionKind.PROMOTE):
        return f"{action.value} is chosen by the retrain action, not directly for {diagnosis}", {}
    return None, {}


def _kept_evidence(params: dict[str, Any]) -> dict[str, Any]:
    """An alert instead of a remedy keeps the scores that were weighed, for the record."""
    return {"evidence": params["evidence"]} if "evidence" in params else {}


def _weighable(
    remedies: Sequence[ActionKind],
    diagnosis: Diagnosis,
    policy: ModelPolicy,
    chosen: ActionKind | None = None,
) -> list[ActionKind]:
    """The deployment remedies the evidence may choose between for ``diagnosis``: the policy's
    own and what each falls back to; a frozen model may also be rolled back. A regression
    after a deploy that can be rolled back is weighed against doing nothing only: undoing the
    release mends its cause, while a fallback that answers the same records better than the
    version before the release is a remedy for that version's own trouble (a drift of its
    own, judged in an incident of its own), not for the release (on time-ordered electricity
    the logistic fallback beat the rolled-back champion in the release's first window)."""
    if diagnosis is Diagnosis.REGRESSION_AFTER_DEPLOY and chosen is ActionKind.ROLLBACK:
        return [ActionKind.ROLLBACK]
    out: list[ActionKind] = []
    extra = [ActionKind.ROLLBACK] if diagnosis is Diagnosis.COLLAPSED_PREDICTIONS else []
    for action in [*remedies, *extra]:
        for candidate in (action, *_substitutes(action, policy)):
            if candidate in weighed_kinds() and candidate not in out:
                out.append(candidate)
    return out


def _rollback_first(
    diagnosis: Diagnosis,
    windows: Sequence[WindowView],
    ctx: g.ModelContext,
    policy: ModelPolicy,
) -> tuple[Weighing, dict[str, Any]] | None:
    """The rollback, with its weighing, when the version that served before answers the
    incident's labelled records clearly better than the live one (None otherwise).

    The table answers a performance drop with a retrain, but when the drop came with the live
    version (a release, or a candidate promoted on a few weeks of a drifting stream that
    serves worse since) the version before it is the quicker remedy, and the only one proven
    on the same records: on time-ordered electricity a retrained candidate that beat the
    champion by 2-8 points for three windows served 3-19 points worse over the next four."""
    reason, rollback = _guard(ActionKind.ROLLBACK, diagnosis, windows, ctx, policy)
    if reason is not None or rollback.get("to_version") is None:
        return None
    assert ctx.evidence is not None
    weighing = ctx.evidence({ActionKind.ROLLBACK: rollback}, ActionKind.RETRAIN)
    if weighing is None or weighing.chosen != ActionKind.ROLLBACK.value:
        return None
    return weighing, rollback


def _weigh(
    chosen: ActionKind,
    params: dict[str, Any],
    remedies: Sequence[ActionKind],
    diagnosis: Diagnosis,
    windows: Sequence[WindowView],
    ctx: g.ModelContext,
    policy: ModelPolicy,
    alternatives: list[Alternative],
    notes: list[str],
) -> tuple[ActionKind, dict[str, Any]]:
    """Let the evidence overrule the table: the best-scoring remedy, or none when every one
    serves worse than doing nothing (see ``agent.evidence``)."""
    if (
        ctx.evidence is not None
        and ActionKind.RETRAIN in remedies
        and chosen not in weighed_kinds()
    ):
        back = _rollback_first(diagnosis, windows, ctx, policy)
        if back is not None:
            rolled, rollback = back
            notes.append(f"evidence: {rolled.reason}")
            if chosen is not ActionKind.ROLLBACK:
                alternatives.append(
                    Alternative(
                        action=chosen,
                        reason=f"version {rollback['to_version']}, live before, answers the "
                        "incident's records clearly better now; a retrain is slower and "
                        "unproven",
                    )
                )
            return ActionKind.ROLLBACK, {**rollback, "evidence": rolled.as_dict()}
    if ctx.evidence is None or chosen not in weighed_kinds():
        return chosen, params
    feasible: dict[ActionKind, dict[str, Any]] = {}
    for action in _weighable(remedies, diagnosis, policy, chosen):
        reason, action_params = _guard(action, diagnosis, windows, ctx, policy)
        if reason is None:
            feasible[action] = action_params
    weighing = ctx.evidence(feasible, chosen)
    if weighing is None:
        notes.append("evidence: too few labelled records to weigh the remedies")
        if params.get("unproven"):
            alternatives.append(
                Alternative(
                    action=chosen,
                    reason=f"version {params.get('to_version')} is not known healthy and "
                    "there are too few labelled records to prove it better",
                )
            )
            # what the rollback falls back to when refused by a guard (fallback, disable)
            for substitute in _substitutes(chosen, policy):
                if substitute is ActionKind.ALERT:
                    break
                reason, substitute_params = _guard(substitute, diagnosis, windows, ctx, policy)
                if reason is None:
                    return substitute, substitute_params
                alternatives.append(
                    Alternative(action=substitute, reason=f"refused by a guard: {reason}")
                )
            return ActionKind.ALERT, {}
        return chosen, params
    notes.append(f"evidence: {weighing.reason}")
    record = weighing.as_dict()
    if weighing.chosen == "keep":
        for action in feasible:
            score = weighing.of(action.value)
            if score is not None:
                alternatives.append(
                    Alternative(action=action, reason=f"evidence: {score.describe()}")
                )
        return ActionKind.ALERT, {"evidence": record}
    new = ActionKind(weighing.chosen)
    if new is not chosen:
        score = weighing.of(chosen.value)
        why = score.describe() if score is not None else "not scored"
        alternatives.append(Alternative(action=chosen, reason=f"evidence: {why}"))
    return new, {**feasible[new], "evidence": record}


def decide(windows: Sequence[WindowView], ctx: g.ModelContext, policy: ModelPolicy) -> Decision:
    """Choose what to do about a model from its recent windows (oldest first)."""
    notes: list[str] = []
    alternatives: list[Alternative] = []
    busy = g.no_concurrent_action(ctx)
    base: dict[str, Any] = {"model": ctx.model, "mode": policy.mode}
    persistence = kinds_persistence(windows, policy)
    persistent = {k for k, p in persistence.items() if p.persistent}
    recent = list(windows)[-policy.persistence.n :]
    findings = [f for w in recent for f in qualifying(w.findings, policy) if f.kind in persistent]
    for kind, verdict in persistence.items():
        notes.append(f"{kind.value}: {verdict.explanation}")
    diagnosis, why = classify(persistent, findings, ctx, policy)
    features = sorted({name for f in findings for name in f.features})
    if diagnosis is Diagnosis.NOISE:
        seen = ", ".join(notes) if notes else "no findings"
        return Decision(
            **base,
            diagnosis=diagnosis,
            action=ActionKind.NONE,
            confidence=round(1.0 - max([0.0, *(p.strength for p in persistence.values())]), 3),
            rationale=f"Noise, not a persistent failure: {seen}. Monitoring more windows.",
            kinds=sorted(persistence),
        )
    severity, severity_why = assess_severity(findings, policy)
    confidence = confidence_of([persistence[k] for k in persistent], findings)
    notes.append(f"diagnosis {diagnosis.value}: {why}")
    notes.append(f"severity {severity_why}")
    notes.append(f"confidence {confidence:.2f}")
    planned = policy.actions_for(diagnosis)
    notify = ActionKind.ALERT in planned
    remedies = [a for a in planned if a not in (ActionKind.ALERT, ActionKind.NONE)]
    if ctx.memory_hint:
        notes.append(ctx.memory_hint)
        if ctx.memory_action in remedies:
            remedies.remove(ctx.memory_action)
            remedies.insert(0, ctx.memory_action)
    if busy:
        return Decision(
            **base,
            diagnosis=diagnosis,
            action=ActionKind.NONE,
            severity=severity,
            confidence=confidence,
            persistent=True,
            rationale=f"Waiting: {busy}. " + "; ".join(notes) + ".",
            kinds=sorted(persistent),
            features=features,
        )
    chosen = ActionKind.ALERT if notify or not remedies else ActionKind.NONE
    params: dict[str, Any] = {}
    queue: list[ActionKind] = list(remedies)
    tried: set[ActionKind] = set()
    while queue:
        action = queue.pop(0)
        if action in tried:
            continue
        tried.add(action)
        if action is ActionKind.ALERT:
            chosen = ActionKind.ALERT
            break
        reason, action_params = _guard(action, diagnosis, windows, ctx, policy)
        if reason is None:
            chosen, params = action, action_params
            break
        alternatives.append(Alternative(action=action, reason=f"refused by a guard: {reason}"))
        queue = _substitutes(action, policy) + queue
    chosen, params = _weigh(
        chosen, params, remedies, diagnosis, windows, ctx, policy, alternatives, notes
    )
    if chosen in remedial_kinds() and confidence < policy.min_confidence:
        alternatives.append(
            Alternative(
                action=chosen,
                reason=f"confidence {confidence:.2f} is below {policy.min_confidence:g}",
            )
        )
        chosen, params = ActionKind.ALERT, _kept_evidence(params)
    if chosen in remedial_kinds():
        limit = g.in_cooldown(ctx, chosen, policy.cooldown(chosen)) or g.daily_limit_reached(
            ctx, policy.max_actions_per_day
        )
        if limit:
            alternatives.append(Alternative(action=chosen, reason=limit))
            chosen, params = ActionKind.ALERT, _kept_evidence(params)
    if chosen is not ActionKind.ALERT:
        for other in remedies:
            if other is not chosen and all(a.action is not other for a in alternatives):
                alternatives.append(Alternative(action=other, reason="lower in the policy's order"))
    if chosen in (ActionKind.ALERT, ActionKind.NONE) or not notify:
        if chosen is ActionKind.ALERT:
            cooling = g.in_cooldown(ctx, ActionKind.ALERT, policy.cooldown(ActionKind.ALERT))
            if cooling:
                alternatives.append(Alternative(action=ActionKind.ALERT, reason=cooling))
                chosen = ActionKind.NONE
        notify = False
    needs_approval = False
    if chosen in remedial_kinds():
        if policy.mode == "advisory":
            needs_approval = True
            notes.append("advisory mode: recommending and waiting for an operator's approval")
        elif chosen in policy.approval.always or (
            chosen in policy.approval.from_severity_actions
            and severity.at_least(policy.approval.from_severity)
        ):
            needs_approval = True
            notes.append(f"{chosen.value} at {severity.value} severity needs approval")
    verb = {
        ActionKind.NONE: "No action now",
        ActionKind.ALERT: "Alert the people on call",
    }.get(chosen, f"Act: {chosen.value}" + (" and alert" if notify else ""))
    if needs_approval:
        verb = f"Recommend: {chosen.value} (awaiting approval)"
    refused = "".join(f" Not {a.action.value}: {a.reason}." for a in alternatives)
    return Decision(
        **base,
        diagnosis=diagnosis,
        action=chosen,
        notify=notify,
        params=params,
        severity=severity,
        confidence=confidence,
        persistent=True,
        needs_approval=needs_approval,
        alternatives=alternatives,
        rationale=f"{verb}. " + "; ".join(notes) + "." + refused,
        kinds=sorted(persistent),
        features=features,
    )


__all__ = ["Alternative", "Decision", "classify", "confidence_of", "decide"]
