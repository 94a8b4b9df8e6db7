"""Guards: checks that hold whatever the policy says.

Each guard returns ``None`` when the action may go ahead, or the reason (a plain sentence with
the numbers) it must not. The policy chooses actions; the guards can only say no.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlwarden.agent.aging import AgedGains, retrains_age_badly
from mlwarden.agent.incidents import WindowView
from mlwarden.agent.own_range import OwnRange, beyond_own_range
from mlwarden.agent.remedies.registry import remedial_kinds
from mlwarden.domain import (
    ActionKind,
    ActionState,
    Deployment,
    FeatureRepair,
    Finding,
    FindingKind,
)
from mlwarden.store.journal import PastAction

if TYPE_CHECKING:
    from mlwarden.agent.evidence import Weighing

# scores the remedies that passed their guards (action → its parameters) on the incident's own
# records, beside doing nothing; None when the evidence is too thin to weigh anything
Evidence = Callable[[Mapping[ActionKind, Mapping[str, Any]], ActionKind], "Weighing | None"]


@dataclass(frozen=True)
class Hindsight:
    """Would a retrain a few windows ago (``retrain.hindsight_windows``, not before the
    incident began) have served better on the records since?"""

    helps: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)
    # not judged yet: too few windows or labelled records since the change to replay it on
    waiting: bool = False


@dataclass
class ModelContext:
    """What the agent knows about a model besides its findings when it decides."""

    model: str
    now: datetime
    incident_id: int | None = None
    # the incident's scope (cause class: quality, service, performance, drift); None: unscoped
    incident_scope: str | None = None
    deployment: Deployment | None = None
    version_health: dict[int, str] = field(default_factory=dict)
    live_history: list[tuple[int, datetime]] = field(default_factory=list)  # newest first
    labels_available: int = 0
    past_actions: list[PastAction] = field(default_factory=list)
    action_in_flight: bool = False
    memory_hint: str | None = None
    memory_action: ActionKind | None = None
    evidence: Evidence | None = None
    # a performance incident's first window: the change point a retrain learns after, and the
    # labelled records that arrived since (None: no change point known, learn from recent data)
    change_window: int | None = None
    labels_since_change: int | None = None
    # how many windows the live version served before the incident began (None: unknown)
    windows_before_change: int | None = None
    # the input repair that would mend these data-quality findings (empty: none fits)
    plan_repair: Callable[[Sequence[Finding]], dict[str, FeatureRepair]] | None = None
    # a retrain a few windows ago, judged on the records since (agent.hindsight); called with
    # the window after which the retrain learns (None: the reference and the recent records);
    # None when no change point is known or it cannot be judged here
    retrain_hindsight: Callable[[int | None], Hindsight | None] | None = None
    # the champion's metric by window before the change point and since (agent.own_range);
    # None when no change point is known
    own_range: Callable[[], OwnRange | None] | None = None
    # past retrains replayed against the champion from the age a retrain serves at
    # (agent.aging); None when no champion can be replayed
    retrain_aging: Callable[[], AgedGains | None] | None = None

    @property
    def live_changed_at(self) -> datetime | None:
        """When the current live version went live (None when unknown)."""
        return self.live_history[0][1] if self.live_history else None

    def rollback_target(self) -> int | None:
        """The newest earlier live version that is not the current one (healthy or not)."""
        live = self.deployment.live_version if self.deployment else None
        for number, _ in self.live_history:
            if number != live:
                return number
        return None


def no_concurrent_action(ctx: ModelContext) -> str | None:
    """Never run two actions on one model at once."""
    if ctx.action_in_flight:
        return f"another action on {ctx.model} is still pending or running"
    return None


def no_retrain_on_broken_data(windows: Sequence[WindowView]) -> str | None:
    """Never retrain on data that failed quality checks (in the windows it would train on)."""
    bad = [
        w.window
        for w in windows
        if any(f.kind is FindingKind.DATA_QUALITY for f in w.every_finding)
    ]
    if bad:
        return f"data quality checks failed in window(s) {bad}: retraining would learn broken data"
    return None


def enough_labels(ctx: ModelContext, minimum: int) -> str | None:
    """Never retrain without enough labels (after the change point, when one is known: what
    came before it teaches the relation that no longer holds)."""
    if ctx.labels_since_change is not None and ctx.labels_since_change < minimum:
        return (
            f"only {ctx.labels_since_change} labelled records since the change in window "
            f"{ctx.change_window}, {minimum} needed to retrain on the new relation"
        )
    if ctx.labels_available < minimum:
        return f"only {ctx.labels_available} labelled records, {minimum} needed to retrain"
    return None


def rollback_target_healthy(ctx: ModelContext) -> str | None:
    """Never roll back to a version that was itself unhealthy. One of unknown health (real
    data drifts, so a version may never have served the clean windows that prove it) only when
    its answers can be weighed on the incident's own records (``ctx.evidence``): the rollback is
    then taken only if they prove it better."""
    target = ctx.rollback_target()
    if target is None:
        return "no earlier live version to roll back to"
    health = ctx.version_health.get(target, "unknown")
    if health == "unhealthy" or (health != "healthy" and ctx.evidence is None):
        return f"version {target} (the previous live version) is {health}, not known healthy"
    return None


def candidate_better(
    candidate: float, champion: float, min_improvement: float, metric: str
) -> str | None:
    """Never promote a candidate that is not better than the champion on held-out recent data."""
    if not candidate > champion + min_improvement:
        return (
            f"candidate {metric} {candidate:.4f} is not better than the champion's "
            f"{champion:.4f} (+{min_improvement:g} required) on held-out recent data"
        )
    return None


def in_cooldown(ctx: ModelContext, action: ActionKind, minutes: float) -> str | None:
    """The same action ran on this model less than ``minutes`` ago. An alert cools down per
    incident: a new failure is told at once even if another incident alerted a minute ago.

    A remedy cools down per cause (the incident's scope): the cooldown stops the agent from
    flapping on one problem, including one that resolved and came back as a new incident of
    the same scope. It does not make a different cause wait: on real data a fallback tried
    (and undone) for a data-quality finding left a stuck model server, diagnosed minutes later
    as its own service incident, serving constant answers through the cooldown. The daily
    limit still bounds the remedies of all causes together."""
    for past in ctx.past_actions:
        if action is ActionKind.ALERT and past.incident_id != ctx.incident_id:
            continue
        if (
            ctx.incident_scope is not None
            and past.scope is not None
            and past.scope != ctx.incident_scope
        ):
            continue
        recent = ctx.now - past.at < timedelta(minutes=minutes)
        if past.kind is action and past.state is not ActionState.FAILED and recent:
            ago = (ctx.now - past.at).total_seconds() / 60
            return f"{action.value} ran {ago:.0f} min ago; cooldown is {minutes:g} min"
    return None


def retrain_would_have_helped(ctx: ModelContext, since_window: int | None = None) -> str | None:
    """Never retrain for a drop unless the same retrain (learning the records after
    ``since_window`` alone, for a concept drift), fitted a few windows ago, serves the records
    since better than the champion (``agent.hindsight``); not before that can be judged."""
    hindsight = ctx.retrain_hindsight(since_window) if ctx.retrain_hindsight is not None else None
    if hindsight is None or hindsight.helps:
        return None
    if hindsight.waiting:
        return f"a retrain cannot be judged on the records since the change yet: {hindsight.reason}"
    start = hindsight.figures.get("hindsight_from_window")
    when = "earlier" if start is None else f"at window {start}"
    return f"a retrain {when} would not have served better since: {hindsight.reason}"


def drop_beyond_own_range(ctx: ModelContext) -> str | None:
    """Never retrain for a drop the champion's metric shows no more than it did from window
    to window before the change (``agent.own_range``): natural drift, not a change."""
    own = ctx.own_range() if ctx.own_range is not None else None
    return None if own is None else beyond_own_range(own)


def retrains_age_well(ctx: ModelContext) -> str | None:
    """Never retrain on a stream where past retrains, replayed, served worse than the champion
    from the age at which a retrain serves for good (``agent.aging``)."""
    aged = ctx.retrain_aging() if ctx.retrain_aging is not None else None
    return None if aged is None else retrains_age_badly(aged)


def daily_limit_reached(ctx: ModelContext, limit: int) -> str | None:
    """At most ``limit`` remedies (deployment changes, retrains) per model per 24 hours."""
    day_ago = ctx.now - timedelta(days=1)
    remedial = remedial_kinds()
    count = sum(
        1
        for p in ctx.past_actions
        if p.kind in remedial and p.at >= day_ago and p.state is not ActionState.FAILED
    )
    if count >= limit:
        return f"{count} actions on {ctx.model} in the last 24 h; the daily limit is {limit}"
    return None


__all__ = [
    "Hindsight",
    "ModelContext",
    "PastAction",
    "candidate_better",
    "daily_limit_reached",
    "drop_beyond_own_range",
    "enough_labels",
    "in_cooldown",
    "no_concurrent_action",
    "no_retrain_on_broken_data",
    "retrain_would_have_helped",
    "retrains_age_well",
    "rollback_target_healthy",
]
