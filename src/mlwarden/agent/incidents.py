"""Noise or persistent failure, and how bad: the judgement the agent makes before choosing.

Two persistence rules separate a noisy window from a failure that stays:

* **k of the last n windows** carry a finding of the kind;
* **Wald's sequential probability ratio test** (A. Wald, "Sequential tests of statistical
  hypotheses", Annals of Mathematical Statistics 16(2), 1945) on the sequence "window flagged /
  not flagged": H0 says windows are flagged at the false-alarm rate ``p0`` of a healthy model,
  H1 at the rate ``p1`` of a broken one. The log-likelihood ratio adds ``log(p1/p0)`` per
  flagged window and ``log((1-p1)/(1-p0))`` per clean one; crossing ``log((1-beta)/alpha)``
  accepts H1 (persistent), crossing ``log(beta/(1-alpha))`` accepts H0 and restarts the test.

>>> from mlwarden.agent.policy import PersistenceRule
>>> flags = [False, True, False, False, False]
>>> evaluate_persistence(flags, PersistenceRule(k=3, n=5)).persistent
False
>>> evaluate_persistence([True, True, False, True, True], PersistenceRule(k=3, n=5)).persistent
True
>>> evaluate_persistence([True, True, True], PersistenceRule(method="sprt")).persistent
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mlwarden.agent.policy import ModelPolicy, PersistenceRule
from mlwarden.domain import Finding, FindingKind, Severity
from mlwarden.store.windows import WindowView


@dataclass(frozen=True)
class Persistence:
    """The verdict of a persistence rule, with the numbers that explain it."""

    persistent: bool
    flagged: int
    considered: int
    strength: float  # 0..1: how far towards "persistent" the evidence has gone
    explanation: str


def evaluate_persistence(flags: Sequence[bool], rule: PersistenceRule) -> Persistence:
    """Judge a chronological sequence of window flags (oldest first) with ``rule``."""
    if rule.method == "k_of_n":
        recent = list(flags)[-rule.n :]
        flagged = sum(recent)
        persistent = flagged >= rule.k
        return Persistence(
            persistent,
            flagged,
            len(recent),
            min(1.0, flagged / rule.k),
            f"{flagged} of the last {len(recent)} windows flagged (rule: {rule.k} of {rule.n})",
        )
    upper = math.log((1 - rule.beta) / rule.alpha)
    lower = math.log(rule.beta / (1 - rule.alpha))
    step_flag = math.log(rule.p1 / rule.p0)
    step_clean = math.log((1 - rule.p1) / (1 - rule.p0))
    llr, flagged, considered = 0.0, 0, 0
    persistent = False
    for flag in flags:
        llr += step_flag if flag else step_clean
        considered += 1
        flagged += int(flag)
        if llr >= upper:
            persistent = True
            break
        if llr <= lower:
            # H0 accepted: the model looked healthy; start a fresh test from here
            llr, flagged, considered = 0.0, 0, 0
    strength = 1.0 if persistent else max(0.0, llr / upper)
    return Persistence(
        persistent,
        flagged,
        considered,
        strength,
        f"sequential test (Wald SPRT): log-likelihood ratio {llr:.2f} against bound {upper:.2f} "
        f"after {considered} windows, {flagged} flagged",
    )


def qualifying(findings: Sequence[Finding], policy: ModelPolicy) -> list[Finding]:
    """The findings whose score reaches the policy's ratio over the detector's threshold."""
    return [f for f in findings if effect_ratio(f) >= policy.min_ratio(f.kind)]


def effect_ratio(finding: Finding) -> float:
    """How far past its threshold a finding is (score / threshold; 1 = on the threshold)."""
    if finding.threshold == 0:
        return math.inf if finding.score > 0 else 1.0
    return abs(finding.score) / abs(finding.threshold)


def kinds_persistence(
    windows: Sequence[WindowView], policy: ModelPolicy
) -> dict[FindingKind, Persistence]:
    """The persistence verdict of each finding kind seen in ``windows`` (oldest first)."""
    kinds = {f.kind for w in windows for f in qualifying(w.findings, policy)}
    newest = qualifying(windows[-1].findings, policy) if windows else []
    out = {}
    for kind in sorted(kinds):
        flags = [any(f.kind == kind for f in qualifying(w.findings, policy)) for w in windows]
        out[kind] = evaluate_persistence(flags, policy.persistence)
        paired = [f for f in newest if f.kind == kind and "versus_previous" in f.evidence]
        if paired and not out[kind].persistent:
            # a release compared with the version before it on every labelled record since
            # (agent.release_check): one test over all its windows, its noise in its standard
            # error, not a window's flag that needs others to persist
            seen = paired[0].evidence["versus_previous"]
            out[kind] = Persistence(
                True,
                out[kind].flagged,
                out[kind].considered,
                1.0,
                f"version {seen['version']} against version {seen['previous']} on the same "
                f"{seen['labelled']} labelled records since its release",
            )
    return out


def performance_drop(findings: Sequence[Finding]) -> float:
    """The largest performance drop the findings report in ``evidence['performance_drop']``."""
    drops = [float(f.evidence.get("performance_drop", 0.0) or 0.0) for f in findings]
    return max([0.0, *drops])


def traffic_share(findings: Sequence[Finding]) -> float:
    """The largest share of records affected that the findings report."""
    shares = [float(f.evidence.get("traffic_share", 0.0) or 0.0) for f in findings]
    return max([0.0, *shares])


def is_collapse(finding: Finding) -> bool:
    """A finding that says predictions became constant or collapsed onto few values."""
    evidence = finding.evidence
    if evidence.get("collapse") or evidence.get("collapsed") or evidence.get("constant"):
        return True
    name = f"{finding.detector} {finding.statistic}".lower()
    return finding.kind is FindingKind.PREDICTION_DRIFT and (
        "collapse" in name or "constant" in name
    )


class Scope(StrEnum):
    """What an incident is about: one cause class, so separate causes get separate incidents.

    Real data drifts all the time. When one incident took every finding of a model, an input
    drift that started in the first window absorbed every later failure (a bad deploy, a frozen
    model, a latency spike) and that failure was judged and verified as drift. With one open
    incident per scope, a performance drop right after a deploy is its own incident, diagnosed
    and verified on its own symptom, whatever the inputs do meanwhile.

    * ``quality``: data-quality checks (nulls, ranges, types, unseen categories, schema);
    * ``service``: latency, errors, late data, and predictions collapsed onto a constant (a
      stuck model server);
    * ``performance``: the model's answers got worse: a measured or estimated performance drop
      (also one the monitor attributes to moving inputs);
    * ``drift``: inputs or outputs moved (data drift, prediction drift, anomalies) without a
      performance finding of their own.

    >>> from mlwarden.domain import Finding
    >>> def seen(kind, **evidence):
    ...     return Finding(kind=kind, detector="d", statistic="s", score=2.0, threshold=1.0,
    ...                    message="m", evidence=evidence)
    >>> scope_of(seen("latency")), scope_of(seen("data_drift"))
    (<Scope.SERVICE: 'service'>, <Scope.DRIFT: 'drift'>)
    >>> scope_of(seen("data_drift", impact={"metric": "accuracy", "drop": 0.1}))
    <Scope.PERFORMANCE: 'performance'>
    >>> scope_of(seen("prediction_drift", collapse=True))  # a stuck model server
    <Scope.SERVICE: 'service'>
    """

    QUALITY = "quality"
    SERVICE = "service"
    PERFORMANCE = "performance"
    DRIFT = "drift"


_SCOPE_OF_KIND = {
    FindingKind.DATA_QUALITY: Scope.QUALITY,
    FindingKind.LATENCY: Scope.SERVICE,
    FindingKind.ERROR_RATE: Scope.SERVICE,
    FindingKind.FRESHNESS: Scope.SERVICE,
    FindingKind.CONCEPT_DRIFT: Scope.PERFORMANCE,
    FindingKind.DATA_DRIFT: Scope.DRIFT,
    FindingKind.PREDICTION_DRIFT: Scope.DRIFT,
    FindingKind.ANOMALY: Scope.DRIFT,
}
# the order in which a model's open incidents are handled each pass: upstream causes first, so
# a broken pipeline is remedied before a performance drop it may have caused is judged
SCOPE_ORDER = (Scope.QUALITY, Scope.SERVICE, Scope.PERFORMANCE, Scope.DRIFT)


def scope_of(finding: Finding) -> Scope:
    """The scope a finding belongs to (see :class:`Scope`)."""
    if is_collapse(finding):
        # a model that answers one constant is a stuck server, not a world that moved: it is
        # remedied at once, even while a retrain for a slow decline waits for approval
        return Scope.SERVICE
    if finding.evidence.get("impact") is not None:
        return Scope.PERFORMANCE
    return _SCOPE_OF_KIND[FindingKind(finding.kind)]


def in_scope(findings: Sequence[Finding], scope: Scope | None) -> list[Finding]:
    """The findings of ``scope`` (all of them for None: an incident from before scopes)."""
    if scope is None:
        return list(findings)
    return [f for f in findings if scope_of(f) is scope]


def scoped(windows: Sequence[WindowView], scope: Scope | None) -> list[WindowView]:
    """``windows`` with only the findings of ``scope`` (signals unchanged)."""
    if scope is None:
        return list(windows)
    return [
        WindowView(
            w.window,
            in_scope(w.findings, scope),
            w.signals,
            [f for f in w.every_finding if scope_of(f) is not scope],
        )
        for w in windows
    ]


# A prediction-drift test fires at its nominal rate (alpha 0.01 a window) on healthy windows: on
# a stationary fleet of 1,000 models most false incidents were one window's prediction drift
# (docs/benchmarks.md, "False incidents on the stationary fleet"). Alone, it opens an incident
# only when the window before had one too, or when its p-value is this far below that rate (a
# healthy window gets there once in ten thousand). A collapse is a stuck server and opens at once.
PREDICTION_DRIFT_OPEN_P = 1e-4


def opens_incident(finding: Finding, previous: Sequence[Finding]) -> bool:
    """Whether ``finding`` may open an incident, given the previous window's qualifying findings.

    >>> from mlwarden.domain import Finding
    >>> def drift(p, **evidence):
    ...     return Finding(kind="prediction_drift", detector="d", statistic="ks", score=0.2,
    ...                    threshold=0.1, p_value=p, message="m", evidence=evidence)
    >>> opens_incident(drift(0.004), []), opens_incident(drift(0.004), [drift(0.008)])
    (False, True)
    >>> opens_incident(drift(1e-6), []), opens_incident(drift(0.004, collapse=True), [])
    (True, True)
    """
    if finding.kind is not FindingKind.PREDICTION_DRIFT or is_collapse(finding):
        return True
    if finding.p_value is not None and finding.p_value < PREDICTION_DRIFT_OPEN_P:
        return True
    return any(f.kind is FindingKind.PREDICTION_DRIFT for f in previous)


def assess_severity(findings: Sequence[Finding], policy: ModelPolicy) -> tuple[Severity, str]:
    """Severity from the effect size, the share of traffic and the performance impact.

    The highest level with any condition met wins; collapsed predictions are always critical.
    Returns the level and the sentence that explains it.
    """
    if any(is_collapse(f) for f in findings):
        return Severity.CRITICAL, "predictions collapsed onto a constant"
    ratio = max([0.0, *(effect_ratio(f) for f in findings if math.isfinite(effect_ratio(f)))])
    share = traffic_share(findings)
    drop = performance_drop(findings)
    measured = {"effect_ratio": ratio, "traffic_share": share, "performance_drop": drop}
    for level in reversed(list(Severity)[1:]):  # the levels above low, most severe first
        rules = getattr(policy.severity, level.value)
        hits = [
            f"{name.replace('_', ' ')} {measured[name]:.3g} >= {limit:g}"
            for name, limit in rules.model_dump().items()
            if limit is not None and measured[name] >= limit
        ]
        if hits:
            return level, f"{level.value}: " + ", ".join(hits)
    return Severity.LOW, (
        f"low: effect ratio {ratio:.3g}, traffic share {share:.3g}, performance drop {drop:.3g}"
    )


__all__ = [
    "SCOPE_ORDER",
    "Persistence",
    "Scope",
    "WindowView",
    "assess_severity",
    "effect_ratio",
    "evaluate_persistence",
    "in_scope",
    "is_collapse",
    "kinds_persistence",
    "opens_incident",
    "performance_drop",
    "qualifying",
    "scope_of",
    "scoped",
    "traffic_share",
]
