"""Verification: after an action, do the next windows look like the pre-failure baseline?

Recovered when, over ``verify.windows`` windows after the action, no finding of the incident's
kinds reaches its threshold and every quality signal the baseline knows (accuracy-like signals
must not fall, error/latency/null-like signals must not rise) stays within ``tolerance`` of it.
For a retrain, the held-out comparison recorded by the action must also favour the candidate.
Findings that an accepted incident absorbed (``agent.acceptance``) never count against a
verification: the drift people accepted is not the symptom another incident's remedy targeted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlwarden.agent.acceptance import without_absorbed
from mlwarden.agent.incidents import Scope, WindowView, in_scope, is_collapse, qualifying
from mlwarden.agent.policy import Diagnosis, ModelPolicy
from mlwarden.agent.remedies.base import VerifyTarget
from mlwarden.agent.remedies.registry import remedy_for
from mlwarden.agent.repair import REPAIRABLE_CHECKS
from mlwarden.domain import Finding, FindingKind

HIGHER_IS_BETTER = ("accuracy", "f1", "auc", "precision", "recall", "r2")
LOWER_IS_BETTER = ("error", "latency", "null", "mae", "rmse", "psi", "drift")


@dataclass
class Verdict:
    recovered: bool
    windows: list[int]
    observed: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        state = "recovered" if self.recovered else "not recovered"
        return f"{state} over windows {self.windows}: " + "; ".join(self.reasons or ["all clear"])


def baseline_of(windows: Sequence[WindowView]) -> dict[str, float]:
    """Mean of each signal over the windows before the failure."""
    sums: dict[str, list[float]] = {}
    for window in windows:
        for name, value in window.signals.items():
            if value is not None and name != "window.closed":
                sums.setdefault(name, []).append(float(value))
    return {name: sum(v) / len(v) for name, v in sums.items()}


# p-values say how surprising a difference is, not how good the model is: never compared
NEUTRAL_PREFIXES = ("drift_p.",)


# the headline metric of each task: precision, recall and F1 move with the class balance, which
# real drift moves all the time, so they do not judge a recovery
_PERFORMANCE_SIGNALS = frozenset({"accuracy", "rmse", "mae"})


def signal_scope(name: str) -> Scope | None:
    """The incident scope a stored signal speaks for (None: it judges no scope).

    Verification compares only the signals of the incident's own scope with the baseline: a
    fallback that ended a latency spike has recovered even while the inputs keep drifting.

    >>> signal_scope("null_rate.nswprice"), signal_scope("latency_p99_ms")
    (<Scope.QUALITY: 'quality'>, <Scope.SERVICE: 'service'>)
    >>> signal_scope("accuracy"), signal_scope("accuracy_ci_low"), signal_scope("drift.nswprice")
    (<Scope.PERFORMANCE: 'performance'>, None, <Scope.DRIFT: 'drift'>)
    """
    if name.startswith(("null_rate.", "invalid_rate.", "unseen_rate.")):
        return Scope.QUALITY
    if name.startswith(("latency_", "delay_")) or name == "error_rate":
        return Scope.SERVICE
    if name in _PERFORMANCE_SIGNALS:
        return Scope.PERFORMANCE
    if name.startswith("drift."):
        return Scope.DRIFT
    return None


def _direction(name: str) -> int:
    lowered = name.lower()
    if lowered.startswith(NEUTRAL_PREFIXES):
        return 0
    if any(word in lowered for word in HIGHER_IS_BETTER):
        return 1
    if any(word in lowered for word in LOWER_IS_BETTER):
        return -1
    return 0


def _expected(
    result: Mapping[str, Any], option: str | None, higher_only: bool = True
) -> dict[str, float]:
    """What the evidence said ``option`` would serve (``{"accuracy": 0.71}``), from the
    weighing recorded in the action's parameters (accuracy only unless ``higher_only`` is
    off: RMSE too)."""
    evidence = result.get("evidence")
    if not isinstance(evidence, Mapping):
        return {}
    for score in evidence.get("scores", []):
        if score.get("option") != option:
            continue
        if score.get("metric") == "accuracy" or not higher_only:
            return {str(score["metric"]): float(score["value"])}
    return {}


def better_than_doing_nothing(
    after: Sequence[WindowView], action_params: Mapping[str, Any], tolerance: float
) -> str | None:
    """Why a remedy that missed the baseline still serves better than doing nothing did when it
    was chosen (None when it does not, or there is no evidence to tell): such a remedy is left
    in place, and the people are told, rather than undone."""
    keep = _expected(action_params, "keep", higher_only=False)
    observed = baseline_of(after)
    for metric, value in keep.items():
        if metric not in observed:
            continue
        now = observed[metric]
        if metric == "accuracy":
            better = now >= value - tolerance
        else:  # RMSE: lower is better, the tolerance relative
            better = now <= value * (1 + tolerance)
        if better:
            return (
                f"{metric} {now:.4g} since the action, against {value:.4g} served by doing "
                f"nothing when it was chosen"
            )
    return None


def quality_symptom(
    action_kind: str, action_result: Mapping[str, Any]
) -> Callable[[Finding], bool]:
    """Which data-quality findings say a pipeline remedy has not mended its incident yet.

    After a remedy that mends inputs (``Remedy.mends_inputs``: a repair), the repairable
    checks on the features it mends: a column that takes one value over a window of
    time-ordered data (one season in six weeks of bike rentals) is no defect a repair could
    mend, and it held a working repair for windows and then declared the data "broken again".
    After a fallback or a disabled model, every data-quality finding (the model it replaced
    answers none of the broken inputs).

    >>> from mlwarden.domain import FindingKind
    >>> def f(check, feature):
    ...     return Finding(kind=FindingKind.DATA_QUALITY, detector="q", features=[feature],
    ...                    statistic="s", score=1.0, threshold=0.01, message=check,
    ...                    evidence={"check": check})
    >>> targeted = quality_symptom("repair", {"features": ["season"]})
    >>> targeted(f("unseen_category", "season")), targeted(f("constant", "season"))
    (True, False)
    >>> targeted(f("unit_change", "hum")), quality_symptom("fallback", {})(f("constant", "hum"))
    (False, True)
    """
    mended = set(action_result.get("features") or [])
    if not remedy_for(action_kind).mends_inputs or not mended:
        return lambda finding: finding.kind is FindingKind.DATA_QUALITY
    return lambda finding: (
        finding.kind is FindingKind.DATA_QUALITY
        and finding.evidence.get("check") in REPAIRABLE_CHECKS
        and bool(mended & set(finding.features))
    )


def verify(
    after: Sequence[WindowView],
    baseline: Mapping[str, float],
    kinds: Sequence[str],
    policy: ModelPolicy,
    action_result: Mapping[str, Any] | None = None,
    action_kind: str | None = None,
    scope: Scope | None = None,
    diagnosis: str | None = None,
    accepted: Sequence[Mapping[str, Any]] = (),
) -> Verdict:
    """Judge the windows after an action against the baseline (``after`` oldest first).

    With ``scope``, only findings and signals of that scope count (see :func:`signal_scope`);
    without, every signal the baseline knows (an incident from before scopes). The symptom the
    action targeted is what is judged: collapsed predictions must be gone after a fallback from
    a frozen model (the fallback's own accuracy under drift is another matter); a performance
    drop is judged by the headline metric against the baseline, or against what the evidence
    said the remedy would serve when that is lower (the pre-failure level may be out of reach
    once the world moved on). The findings the ``accepted`` incidents absorbed do not count.
    """
    windows = without_absorbed(list(after)[: policy.verify.windows], accepted)
    reasons: list[str] = []
    result = action_result or {}
    if result.get("promoted") is False:
        reasons.append(f"the retrained candidate was discarded: {result.get('discarded')}")
    # after a fallback the answers come from another model: its outputs differ from the
    # champion's reference by design, so prediction drift says nothing about recovery
    # a fallback or a disabled model trades accuracy for safety on purpose: after one, recovery
    # means the failure the incident was about is gone, not that the lighter model is as good
    # (the remedy's ``verifies``: the symptom only, or the whole baseline)
    symptom_only = (
        action_kind is not None and remedy_for(action_kind).verifies is VerifyTarget.SYMPTOM
    )
    judged = set(kinds) - ({"prediction_drift"} if symptom_only else set())
    expected = _expected(result, action_kind)

    def targeted(finding: Finding) -> bool:
        if finding.kind.value not in judged:
            return False
        if diagnosis == Diagnosis.COLLAPSED_PREDICTIONS.value:
            return is_collapse(finding)
        # a drop is measured against the remedy's own reference after a switch of version:
        # the headline metric against the expectation judges it instead
        return not (scope is Scope.PERFORMANCE and expected)

    for window in windows:
        hits = [f for f in qualifying(in_scope(window.findings, scope), policy) if targeted(f)]
        if hits:
            reasons.append(
                f"window {window.window} still shows {', '.join(sorted({f.kind for f in hits}))}"
            )
    observed = baseline_of(windows)
    tolerance = policy.verify.tolerance
    for name, base in baseline.items():
        direction = _direction(name)
        if name not in observed or direction == 0:
            continue
        if scope is not None and signal_scope(name) is not scope:
            continue
        if direction > 0 and symptom_only:
            continue
        value = observed[name]
        if name in expected and expected[name] < base:
            # the pre-failure level may be out of reach (the world moved on): a remedy is held
            # to what the evidence said it would serve when it was chosen
            base = expected[name]
        if direction > 0 and value < base - tolerance:
            reasons.append(f"{name} {value:.4g} is below the baseline {base:.4g} - {tolerance:g}")
        if direction < 0 and value > base + tolerance * max(1.0, abs(base)):
            reasons.append(f"{name} {value:.4g} is above the baseline {base:.4g} + tolerance")
    return Verdict(not reasons, [w.window for w in windows], observed, reasons)


# the champion answering in shadow behind a fallback takes the traffic back once its copies of
# the requests look healthy: no more than this share of them one class (the collapse detector's
# own threshold), errors no more than ``SHADOW_ERROR_SLACK`` above the baseline's error rate,
# and a p99 latency no more than ``SHADOW_LATENCY_RATIO`` times the baseline's
SHADOW_MIN_ROWS = 30
SHADOW_ERROR_SLACK = 0.02
SHADOW_LATENCY_RATIO = 1.5


def champion_trouble(
    rows: Sequence[Mapping[str, Any]], baseline: Mapping[str, float], max_share: float = 0.99
) -> str | None:
    """Why the champion's shadow answers (``rows``, one window of them) do not look healthy
    yet, or None when they do.

    >>> answers = [{"prediction": i % 2, "error": None, "latency_ms": 4.0} for i in range(40)]
    >>> champion_trouble(answers, {"error_rate": 0.0, "latency_p99_ms": 5.0}) is None
    True
    >>> champion_trouble([{**a, "prediction": 1} for a in answers], {})
    'its answers are still collapsed: 100.0% are 1'
    """
    if len(rows) < SHADOW_MIN_ROWS:
        return f"only {len(rows)} shadow answers in the window, {SHADOW_MIN_ROWS} needed"
    errors = sum(1 for r in rows if r.get("error")) / len(rows)
    if errors > baseline.get("error_rate", 0.0) + SHADOW_ERROR_SLACK:
        return f"{errors:.1%} of its answers failed"
    answers = Counter(str(r.get("prediction")) for r in rows if not r.get("error"))
    if answers:
        ((top, count),) = answers.most_common(1)
        share = count / answers.total()
        if share > max_share:
            return f"its answers are still collapsed: {share:.1%} are {top}"
    base_p99 = baseline.get("latency_p99_ms")
    latencies = sorted(float(r["latency_ms"]) for r in rows if r.get("latency_ms") is not None)
    if base_p99 and latencies:
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        if p99 > SHADOW_LATENCY_RATIO * base_p99:
            return f"its p99 latency is {p99:.0f} ms against {base_p99:.0f} ms before"
    return None


__all__ = [
    "Verdict",
    "baseline_of",
    "better_than_doing_nothing",
    "champion_trouble",
    "quality_symptom",
    "signal_scope",
    "verify",
]
