"""Accepted drift: drift that persists without harm stops being worked on, and absorbs only itself.

Real inputs drift all the time. On time-ordered electricity every window from the first drifts
from the reference, and the model's accuracy settles 3-4 points below its reference level
(0.719 → 0.68) where no remedy serves better than doing nothing (a retrain's canary lost
against the champion). Left open, that incident took every later failure and a retrain asked
for it blocked the next diagnosis (the demo's concept change at window 15 was folded into the
performance incident opened at window 2). Accepted, the incident is remembered so the same
drift opens nothing new, and it **absorbs only what it accepted**:

* a drift incident takes the drift findings (inputs or outputs moved, no performance impact);
* a performance incident (a drop on moving inputs) takes the performance findings of the
  change it accepted: a change point the performance detector dated at or before the
  acceptance, or a drop against the reference no deeper than the accepted one by more than the
  detector's own tolerance. A change point after the acceptance is a new failure, with an
  incident of its own (``concept.performance_change`` restarts its regimes, so a bad deploy or a
  concept change on a drifting stream starts a regime of its own).

With ``drift.rebaseline_on_accept``, the agent's acceptance also re-bases the monitor: the
reference it compares every window with becomes the stored records of the newest
``persistence.n`` windows of the incident, when none of them had a quality or service finding
(``rebaseline_windows``). The drift people accepted is then the new normal and stops being
re-raised window after window; the terms record which windows (``terms["rebaseline"]``), for
the live version of the time only. Reopening the incident drops the terms, and the monitor
goes back to the reference registered with the version. An incident that re-based the
reference stays accepted while it is in force (it is not resolved for being quiet: it is quiet
because of it).

An incident is accepted by the policy (``drift.accept_after_windows`` windows without a remedy
to take) or by an operator (``accept_incident``); either is journaled on the incident's
timeline and in the audit log, and undone by ``reopen_incident`` (the agent then does not
accept it again by itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlwarden.agent.incidents import Scope, WindowView, scope_of, scoped
from mlwarden.domain import Finding
from mlwarden.errors import Conflict
from mlwarden.store.incidents import ACCEPTED, AgentRepo, IncidentDetail, IncidentState, can_move
from mlwarden.store.repository import Store

# the scopes whose incidents can be accepted: a broken pipeline or a failing service is never
# the new normal
ACCEPTABLE = (Scope.DRIFT, Scope.PERFORMANCE)


def finding_drop(finding: Finding) -> float:
    """How much worse the metric got, by the finding's own account (0 when it says nothing)."""
    evidence = finding.evidence
    impact = evidence.get("impact")
    if isinstance(impact, Mapping) and impact.get("drop") is not None:
        return float(impact["drop"])
    value = evidence.get("performance_drop")
    return float(value) if value is not None else float(finding.score)


def terms_of(windows: Sequence[WindowView], window: int) -> dict[str, Any]:
    """What an acceptance in ``window`` accepts, from the incident's (scoped) windows: the
    window, and the deepest performance drop its findings reported (0 for drift alone)."""
    drops = [
        finding_drop(f) for w in windows for f in w.findings if scope_of(f) is Scope.PERFORMANCE
    ]
    return {"window": int(window), "drop": max([0.0, *drops])}


def rebaseline_windows(windows: Sequence[WindowView], count: int) -> tuple[int, int] | None:
    """The (first, last) of the newest ``count`` windows when they follow each other and none
    had a quality or service finding (their records then make a reference of the new normal),
    else None. ``windows``: unscoped, oldest first."""
    recent = list(windows)[-count:]
    if len(recent) < count or count < 1:
        return None
    numbers = [w.window for w in recent]
    if numbers != list(range(numbers[0], numbers[0] + count)):
        return None
    broken = (Scope.QUALITY, Scope.SERVICE)
    if any(scope_of(f) in broken for w in recent for f in w.findings):
        return None
    return numbers[0], numbers[-1]


def rebaseline_in_force(
    accepted: Sequence[Mapping[str, Any]], version: int
) -> tuple[int, int, int] | None:
    """(incident, first window, last window) of the newest re-based reference among the
    ``accepted`` incidents that applies to live ``version``, or None: the registered one."""
    for incident in reversed(accepted):
        terms = (incident.get("baseline") or {}).get("accepted") or {}
        rebase = terms.get("rebaseline")
        if isinstance(rebase, Mapping) and rebase.get("version") == version:
            return int(incident["id"]), int(rebase["first"]), int(rebase["last"])
    return None


def absorbed(finding: Finding, accepted: Sequence[Mapping[str, Any]]) -> bool:
    """True when one of the ``accepted`` incidents already took ``finding`` (see the module)."""
    scope = scope_of(finding)
    for incident in accepted:
        if incident.get("scope") != scope.value:
            continue
        if scope is not Scope.PERFORMANCE:
            return True
        terms = (incident.get("baseline") or {}).get("accepted") or {}
        window = terms.get("window")
        change = finding.evidence.get("change_window")
        if change is not None:
            if window is None or int(change) <= int(window):
                return True
            continue
        if finding_drop(finding) <= float(terms.get("drop", 0.0)) + abs(finding.threshold):
            return True
    return False


def without_absorbed(
    windows: Sequence[WindowView], accepted: Sequence[Mapping[str, Any]]
) -> list[WindowView]:
    """``windows`` without the findings the ``accepted`` incidents took."""
    if not accepted:
        return list(windows)
    return [
        WindowView(
            w.window,
            [f for f in w.findings if not absorbed(f, accepted)],
            w.signals,
            w.others,
        )
        for w in windows
    ]


def accept_incident(
    store: Store,
    incident_id: int,
    *,
    actor: str,
    why: str,
    terms: Mapping[str, Any] | None = None,
) -> IncidentDetail:
    """Accept an open drift or performance incident (``Conflict`` otherwise); ``terms``: what
    is accepted (``terms_of``), by default what the incident's stored windows showed."""
    repo = AgentRepo(store)
    incident = repo.get_incident(incident_id)
    scope = incident.get("scope")
    if scope not in {s.value for s in ACCEPTABLE}:
        raise Conflict(
            f"incident {incident_id} is about {scope or 'every finding'}: only drift, or a "
            "drop on drifting inputs, can be accepted",
            incident=incident_id,
        )
    if incident["state"] != IncidentState.OPEN.value or not can_move(incident["state"], ACCEPTED):
        raise Conflict(
            f"incident {incident_id} is {incident['state']}: only an open incident (nothing "
            "in flight, nothing being verified) can be accepted",
            incident=incident_id,
        )
    if terms is None:
        # an operator's: what the incident's own windows showed, up to its newest
        stored = repo.recent_windows(incident["model"], 1000, after=incident["first_window"] - 1)
        terms = terms_of(
            [w for w in scoped(stored, Scope(scope)) if w.window <= incident["last_window"]],
            incident["last_window"],
        )
    baseline = dict(incident["baseline"])
    baseline["accepted"] = {**terms, "by": actor}
    repo.update_incident(
        incident_id,
        state=ACCEPTED,
        baseline=baseline,
        event="accepted",
        text=why,
        entry={"actor": actor},
    )
    store.audit(
        actor,
        "incident.accepted",
        f"{incident['model']}/incident/{incident_id}",
        {"why": why, "terms": baseline["accepted"]},
    )
    return repo.get_incident(incident_id)


def reopen_incident(store: Store, incident_id: int, *, actor: str, why: str) -> IncidentDetail:
    """Undo an acceptance: the incident is open again and the agent works on it; it does not
    accept it again by itself (an operator still can). ``Conflict`` unless accepted."""
    repo = AgentRepo(store)
    incident = repo.get_incident(incident_id)
    if incident["state"] != ACCEPTED:
        raise Conflict(
            f"incident {incident_id} is {incident['state']}, not accepted: nothing to undo",
            incident=incident_id,
        )
    baseline = dict(incident["baseline"])
    baseline["reopened_by"] = actor
    baseline.pop("accepted", None)
    repo.update_incident(
        incident_id,
        state=IncidentState.OPEN.value,
        baseline=baseline,
        event="reopened",
        text=why,
        entry={"actor": actor},
    )
    store.audit(
        actor, "incident.reopened", f"{incident['model']}/incident/{incident_id}", {"why": why}
    )
    return repo.get_incident(incident_id)


__all__ = [
    "ACCEPTABLE",
    "absorbed",
    "accept_incident",
    "finding_drop",
    "rebaseline_in_force",
    "rebaseline_windows",
    "reopen_incident",
    "terms_of",
    "without_absorbed",
]
