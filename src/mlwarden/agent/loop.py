"""The Agent: monitor → decide → act → verify for every model, once or forever, as the one leader.

``Agent.run_once()`` is one pass (``mlwarden check``): it first finishes or rolls back whatever
the journal holds in flight (a previous agent may have died mid-action), expires approvals, then
for each monitored model stores the newly closed windows, updates the model's incident, decides,
acts or queues for approval, and verifies actions already taken.

``Agent.run_forever()`` (``mlwarden agent``) repeats the pass while it holds the leadership
(``store.leadership.Leadership``): a second agent waiting for it takes over when the first
dies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from mlwarden.agent.acceptance import (
    absorbed,
    accept_incident,
    rebaseline_windows,
    terms_of,
    without_absorbed,
)
from mlwarden.agent.aging import AGE, AGED_CANDIDATES, AgedGains
from mlwarden.agent.canary import CanaryVerdict, answers_of, artifact_predictor, judge_canary
from mlwarden.agent.decide import Decision, decide
from mlwarden.agent.evidence import (
    Answer,
    OptionScore,
    Weighing,
    answerable_refusals,
    answered_score,
    choose,
    labelled,
    margin,
    refused_score,
    refused_unlabelled,
    served_score,
    with_refusals,
)
from mlwarden.agent.guards import Evidence, Hindsight, ModelContext
from mlwarden.agent.hindsight import (
    candidate_at,
    hindsight_window,
    judge_in_hindsight,
    validate_now,
)
from mlwarden.agent.incidents import (
    SCOPE_ORDER,
    Scope,
    WindowView,
    in_scope,
    is_collapse,
    opens_incident,
    qualifying,
    scope_of,
    scoped,
)
from mlwarden.agent.memory import recall
from mlwarden.agent.monitor_source import ClosedWindow, MonitorSource, WindowSource
from mlwarden.agent.operations.service import Operations
from mlwarden.agent.own_range import OwnRange
from mlwarden.agent.policy import Diagnosis, ModelPolicy, Policy, load_policy
from mlwarden.agent.policy_history import record_policy
from mlwarden.agent.release_check import check_release
from mlwarden.agent.remedies.base import ExecEnv, VerifyTarget, crashpoint
from mlwarden.agent.remedies.registry import remedy_for
from mlwarden.agent.remedies.retrain import score_predictions
from mlwarden.agent.repair import plan_repair
from mlwarden.agent.verify import (
    Verdict,
    baseline_of,
    better_than_doing_nothing,
    champion_trouble,
    quality_symptom,
    verify,
)
from mlwarden.agent.workers import PooledSource, poolable
from mlwarden.clock import utcnow
from mlwarden.domain import (
    ActionKind,
    Deployment,
    FeatureRepair,
    FeatureType,
    Finding,
    FindingKind,
    IncidentState,
    ModelSpec,
    Severity,
    Task,
)
from mlwarden.serving.predictors import LocalPredictor
from mlwarden.serving.repair import repair_instances
from mlwarden.settings import Settings
from mlwarden.store.approvals import Approvals
from mlwarden.store.incidents import CLOSED_STATES, AgentRepo, IncidentRow
from mlwarden.store.journal import ActionJournal, ActionRow
from mlwarden.store.leadership import Leadership
from mlwarden.store.repository import Store

log = logging.getLogger("mlwarden.agent")

# the closed states whose windows a new incident of the same scope does not open in again
UNSUPERSEDED = tuple(s for s in CLOSED_STATES if s is not IncidentState.SUPERSEDED)

# the most records of an incident that its remedies are scored on (the newest are kept)
EVIDENCE_RECORDS = 20_000
# how many whole windows before a drop's change point bound the champion's own range
OWN_RANGE_WINDOWS = 24


Prepare = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def _scorable(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records a version can be replayed and scored on: labelled, not failed."""
    return [r for r in labelled(rows) if not r.get("error")]


def _replayed(task: Task, answer: Answer, rows: Sequence[Mapping[str, Any]]) -> tuple[str, float]:
    """``(metric, value)`` of ``answer`` replayed on ``rows`` (scorable, at least one)."""
    truth = np.array([r["label"] for r in rows], dtype=object)
    answers = np.array(answer([r["features"] for r in rows]), dtype=object)
    return score_predictions(task, truth, answers)


def default_source(store: Store, settings: Settings | None = None) -> WindowSource:
    """The Monitor engine over ``store``'s records, windowed as ``settings`` say: in
    ``settings.agent_workers`` worker processes when that is more than one (``agent.workers``;
    an in-memory SQLite store, which other processes cannot open, stays in this one)."""
    settings = settings or Settings()
    if settings.agent_workers > 1 and poolable(store):
        return PooledSource(store, settings, workers=settings.agent_workers)
    return MonitorSource(store, settings)


def _escalated(severity: Severity) -> Severity:
    """The severity of an escalation alert: one level above the incident's, at least high."""
    levels = list(Severity)
    above = levels[min(severity.rank + 1, len(levels) - 1)]
    return above.raise_to(Severity.HIGH)


def verdict_windows(after: Sequence[WindowView], verdict: Verdict) -> list[WindowView]:
    """The windows a verdict judged."""
    judged = set(verdict.windows)
    return [w for w in after if w.window in judged]


def _scope(incident: IncidentRow) -> Scope | None:
    """An incident's scope; None for one opened before scopes (it takes every finding)."""
    value = incident.get("scope")
    return None if value is None else Scope(value)


class Agent:
    """One agent over one store; ``run_once`` is a pass over every monitored model."""

    def __init__(
        self,
        store: Store,
        policy: Policy | None = None,
        source: WindowSource | None = None,
        *,
        actor: str = "agent",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.policy = policy or load_policy()
        self.source = source if source is not None else default_source(store)
        if isinstance(self.source, MonitorSource) and self.source.detection is None:
            # the thresholds of the policy the agent holds now: a reloaded policy applies at once
            self.source.detection = lambda model: self.policy.for_model(model).monitor_config()
        self.actor = actor
        self.clock = clock
        self.repo = AgentRepo(store)
        self.journal = ActionJournal(store)
        self.approvals = Approvals(store)
        # the leadership run_forever competes for (None before it runs)
        self.leadership: Leadership | None = None
        # versions are immutable: a loaded predictor serves every later weighing
        self._predictors: dict[tuple[str, int], LocalPredictor | None] = {}
        # the candidates a retrain would have fitted at past windows (agent.hindsight,
        # agent.aging), by (model, champion, window, since): the newest few only
        self._candidates: dict[tuple[str, int, int, int | None], tuple[Any | None, str]] = {}
        # during a pass (run_once): each model's last stored window at its start, and the
        # models that had no incident then and have opened none since
        self._last_windows: dict[str, int | None] = {}
        self._quiet: set[str] = set()
        self._records_read: tuple[tuple[str, int, int | None] | None, list[dict[str, Any]]] = (
            None,
            [],
        )
        # each model's last input repair and what it was planned from: a quality incident asks
        # for the same plan at every window it lasts (the live version's sample is immutable)
        self._repair_plans: dict[str, tuple[tuple[Any, ...], dict[str, FeatureRepair]]] = {}

    @property
    def operations(self) -> Operations:
        """The one service that runs and undoes actions, with this agent's policy and actor."""
        return Operations(self.store, actor=self.actor, policy=self.policy)

    def env(self, model: str) -> ExecEnv:
        return self.operations.env(model)

    # ------------------------------------------------------------------ the pass

    def run_once(self, models: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One pass; returns one summary per model (its incident state and what was done)."""
        self.recover()
        self.approvals.expire(self.clock())
        models = list(models or self.store.monitored_models())
        # read once for the pass, not once a model: the last stored windows, and which models
        # have incidents (only this pass's own check of a model changes either)
        self._last_windows = self.repo.last_windows(models)
        self._quiet = set(models) - self.repo.models_with_incidents()
        if isinstance(self.source, PooledSource):
            # every model's windows are closed by the workers while this process stores and
            # decides on the models before it, in the same order as without them
            self.source.start_pass(list(self._last_windows.items()))
        summaries = []
        try:
            for model in models:
                try:
                    summaries.append(self.check_model(model))
                except Exception:
                    log.exception("agent pass failed for model %s", model)
                    summaries.append({"model": model, "error": "see the agent log"})
        finally:
            self._last_windows, self._quiet = {}, set()
        return summaries

    def _open_of(self, model: str) -> list[IncidentRow]:
        """``repo.open_incidents``, without asking for a model with none at the pass's start
        that has opened none since (most models of a fleet)."""
        return [] if model in self._quiet else self.repo.open_incidents(model)

    def _accepted_of(self, model: str) -> list[IncidentRow]:
        """``repo.accepted_incidents``, as ``_open_of``."""
        return [] if model in self._quiet else self.repo.accepted_incidents(model)

    def recover(self) -> list[int]:
        """Finish (or, on failure, roll back) every action left pending or running."""
        done = []
        for action in self.journal.in_flight():
            row = self.operations.run_action(action["id"])
            done.append(row["id"])
            if row["incident_id"] is not None:
                self._after_action(row)
        return done

    def check_model(self, model: str) -> dict[str, Any]:
        """Store the model's new windows, open an incident for each scope whose findings
        appeared, and move every open incident on (decide, act, verify)."""
        policy = self.policy.for_model(model)
        last = (
            self._last_windows.pop(model)
            if model in self._last_windows
            else self.repo.last_window(model)
        )
        closed = self.source.closed_windows(model, last)
        for window in closed:
            findings = list(window.findings)
            if window is closed[-1]:
                findings += self._release_findings(model, window, policy)
            self.repo.save_window(
                model,
                window.window,
                window.ts,
                window.signals,
                findings,
                end_received_at=window.end_received_at,
                end_record_id=window.end_record_id,
            )
        history = self.repo.recent_windows(model, max(policy.persistence.n * 4, 20))
        summary: dict[str, Any] = {"model": model, "windows": len(history)}
        if not history:
            return summary
        # a performance incident a release made stale is closed before new incidents open, so
        # the release's own drop opens its incident in this window, not the next
        for incident in self._open_of(model):
            superseded_by = self._deployed_since(model, incident)
            if superseded_by is not None:
                self._supersede(model, incident, superseded_by)
        self._open_incidents(model, history, policy)
        self._learn_health(model, history, policy)
        handled = []
        for incident in self._by_scope(self._open_of(model)):
            handled.append(self._handle(model, incident, history, policy))
        for accepted in self._accepted_of(model):
            self._watch_accepted(accepted, history, policy)
        if handled:
            # the most upstream incident speaks for the model; every one is listed
            summary |= {k: v for k, v in handled[0].items() if k != "scope"}
            summary["incidents"] = handled
        return summary

    def _release_findings(
        self, model: str, window: ClosedWindow, policy: ModelPolicy
    ) -> list[Finding]:
        """The newest window's finding of a release worse than the version it replaced, on
        the same records (``agent.release_check``); none when it is not, or cannot be told."""
        if window.end_received_at is None or window.end_record_id is None:
            return []
        try:
            found = check_release(
                self.store,
                self.repo,
                model,
                window.window,
                (window.end_received_at, window.end_record_id),
                policy,
                agent=self.actor,
                now=self.clock(),
                predictor=lambda version: self._predictor(model, version),
            )
        except Exception:  # a finding of its own, never a reason for the pass to fail
            log.exception("comparing %s's release with the version before failed", model)
            return []
        return [] if found is None else [found]

    def _predictor(
        self, model: str, version: int, spec: ModelSpec | None = None
    ) -> LocalPredictor | None:
        """A version's model (``agent.canary.artifact_predictor``), loaded once per agent: the
        release check, the evidence, the canary and the champion's own range share it."""
        key = (model, version)
        if key not in self._predictors:
            self._predictors[key] = artifact_predictor(self.store, model, version, spec)
        return self._predictors[key]

    @staticmethod
    def _by_scope(incidents: list[IncidentRow]) -> list[IncidentRow]:
        order = {scope.value: rank for rank, scope in enumerate(SCOPE_ORDER)}
        return sorted(incidents, key=lambda i: (order.get(i.get("scope") or "", -1), i["id"]))

    def _open_incidents(self, model: str, history: list[WindowView], policy: ModelPolicy) -> None:
        """Open an incident for each scope that has qualifying findings in the newest window and
        no incident of its own yet. An incident from before scopes takes every finding until it
        closes; accepted drift takes the drift findings."""
        latest = history[-1]
        if not latest.findings:
            return  # before the queries below: most windows of most models find nothing
        current = self._open_of(model)
        if any(i.get("scope") is None for i in current):
            return
        taken = {i["scope"] for i in current}
        accepted = self._accepted_of(model)
        before = [w for w in history if w.window == latest.window - 1]
        previous = qualifying(before[-1].findings, policy) if before else []
        for scope in SCOPE_ORDER:
            if scope.value in taken:
                continue
            # what accepted drift took is not new; a performance change after it is; one
            # window's prediction drift at the test's nominal rate is not yet an incident
            found = [
                f
                for f in qualifying(in_scope(latest.findings, scope), policy)
                if not absorbed(f, accepted) and opens_incident(f, previous)
            ]
            if not found:
                continue  # before the query below
            # a superseded incident covered the version before the release: what the released
            # version does in the same window is new
            covered = self.repo.last_closed_window(model, scope.value, UNSUPERSEDED)
            if covered is not None and latest.window <= covered:
                continue
            # the baseline is this scope's own: the last windows before the failure that were
            # clean of it, even where other scopes (say, seasonal drift) had findings
            clean = [
                w
                for w in history
                if w.window < latest.window and not qualifying(in_scope(w.findings, scope), policy)
            ]
            kinds = sorted({f.kind.value for f in found})
            self._quiet.discard(model)
            self.repo.create_incident(
                model,
                latest.window,
                {"signals": baseline_of(clean[-policy.persistence.n :])},
                f"{scope.value}: {', '.join(kinds)} in window {latest.window}",
                scope=scope.value,
            )

    def _handle(
        self,
        model: str,
        incident: IncidentRow,
        history: list[WindowView],
        policy: ModelPolicy,
    ) -> dict[str, Any]:
        """Move one open incident on: verify, resume, wait for approval, or decide and act."""
        summary: dict[str, Any] = {"incident": incident["id"], "scope": incident.get("scope")}
        latest = history[-1]
        if incident["state"] == "acting":
            self._acting(incident)
            return summary
        superseded_by = self._deployed_since(model, incident)
        if superseded_by is not None:
            self._supersede(model, incident, superseded_by)
            summary["decision"] = "superseded"
            return summary
        if incident["state"] == "verifying":
            summary["verification"] = self._verify(model, incident, policy)
            return summary
        if self.approvals.pending_for_incident(incident["id"]) is not None:
            summary["decision"] = "awaiting approval"
            self.repo.update_incident(incident["id"], last_window=latest.window)
            return summary
        upstream = self._upstream_of(model, incident)
        if upstream is not None and upstream["first_window"] < (
            incident["first_window"] - policy.persistence.n
        ):
            # it was open for windows before the drop began, and performance held meanwhile:
            # it does not explain this drop (a real calendar feature, constant in every window
            # of a time-ordered stream, kept a quality incident open from window 0 while a bad
            # deploy at window 6 went unjudged)
            upstream = None
        if upstream is not None:
            # a broken pipeline or a failing service explains a performance drop that began
            # with it: it is remedied (and verified) first, and the drop judged on what remains
            summary["decision"] = f"waiting for incident {upstream['id']} ({upstream['scope']})"
            self.repo.update_incident(incident["id"], last_window=latest.window)
            return summary
        since = incident["first_window"] - policy.persistence.n
        if incident.get("scope") is not None:
            # the windows of a resolved incident of the same scope were its failure's, remedied
            # and verified: a new incident persists on windows of its own (after a rollback
            # verified under drift, the drift's drop is judged afresh, not on the bad
            # version's windows)
            resolved = self.repo.last_closed_window(model, incident["scope"], ("resolved",))
            if resolved is not None:
                since = max(since, resolved + 1)
        windows = scoped([w for w in history if w.window >= since], _scope(incident))
        # the findings of an accepted drift are not this incident's (a concept change on
        # inputs that drift anyway is judged on its own windows)
        windows = without_absorbed(windows, self.repo.accepted_incidents(model))
        decision = self._decide(model, incident, windows, policy)
        summary["decision"] = decision.action.value
        self._apply(model, incident, decision, windows, policy)
        self._maybe_accept(model, incident["id"], windows, decision, policy)
        return summary

    def _deployed_since(self, model: str, incident: IncidentRow) -> Deployment | None:
        """The revision that put a new live version in place, by someone other than the agent,
        after a performance incident opened that is still undecided or verifying its remedy
        (None when there is none). Its windows from then on measure the new version: a drop
        after the release is the release's (its own incident), and a retrained candidate's
        canary is compared with a champion that no longer serves."""
        if incident.get("scope") != Scope.PERFORMANCE.value or incident["state"] not in (
            "open",
            "verifying",
        ):
            return None
        history = self.store.deployment_history(model, limit=50)  # newest first
        for newer, older in pairwise(history):
            if newer.created_at <= incident["opened_at"]:
                break
            if newer.actor != self.actor and newer.live_version != older.live_version:
                return newer
        return None

    def _supersede(self, model: str, incident: IncidentRow, revision: Deployment) -> None:
        """Close a performance incident that a new version's going live made stale."""
        why = (
            f"version {revision.live_version} went live (revision {revision.revision}, by "
            f"{revision.actor}) after this incident opened; the model is judged anew from here"
        )
        pending = self.approvals.pending_for_incident(incident["id"])
        if pending is not None:
            self.approvals.withdraw(pending["id"], actor=self.actor, reason=why)
        action_id = incident["baseline"].get("action_id")
        action = self.journal.get(action_id) if action_id is not None else None
        if (
            action is not None
            and action["kind"] == ActionKind.RETRAIN.value
            and action["state"] == "done"
            and action["result"].get("watching")
        ):
            # the candidate was validated against the replaced champion: its canary or shadow
            # is withdrawn (the release stays), not judged against a version that left
            self.operations.undo_action(action["id"], keep_later=True)
            why += (
                f"; the {action['result']['watching']} of candidate version "
                f"{action['result']['candidate_version']} (action {action['id']}) was withdrawn"
            )
        self.repo.update_incident(incident["id"], state="superseded", event="superseded", text=why)

    def _upstream_of(self, model: str, incident: IncidentRow) -> IncidentRow | None:
        """The open quality or service incident a performance incident waits for, if any."""
        if incident.get("scope") != Scope.PERFORMANCE.value:
            return None
        for scope in (Scope.QUALITY, Scope.SERVICE):
            upstream = self.repo.open_incident(model, scope.value)
            if upstream is not None:
                return upstream
        return None

    def _maybe_accept(
        self,
        model: str,
        incident_id: int,
        windows: list[WindowView],
        decision: Decision,
        policy: ModelPolicy,
    ) -> None:
        """Drift that persisted ``drift.accept_after_windows`` windows without harm is accepted
        (``agent.acceptance``): input drift with no performance incident of the model beside
        it, or a drop on moving inputs for which no remedy was taken or asked in all that time
        (the evidence or the hindsight found none better than doing nothing). The people were
        told, nothing is to be done, and it must not absorb or block what comes next.
        Journaled on the incident and audited; an operator can reopen it, and then it is not
        accepted again by the agent."""
        incident = self.repo.get_incident(incident_id)
        after = policy.drift.accept_after_windows
        if after is None or incident["state"] != "open" or "reopened_by" in incident["baseline"]:
            return
        since = [w for w in windows if w.window >= incident["first_window"]]
        if len(since) < after or incident["diagnosis"] is None:
            return
        # fading for now (not persistent in the newest windows) it is judged by what it was
        diagnosis = decision.diagnosis if decision.persistent else Diagnosis(incident["diagnosis"])
        scope = incident.get("scope")
        if scope == Scope.DRIFT.value:
            if diagnosis is not Diagnosis.COVARIATE_DRIFT_STABLE or (
                self.repo.open_incident(model, Scope.PERFORMANCE.value)
            ):
                return
            why = "without a performance drop"
        elif scope == Scope.PERFORMANCE.value:
            if diagnosis is not Diagnosis.COVARIATE_DRIFT_PERFORMANCE_DROP or (
                decision.action not in (ActionKind.ALERT, ActionKind.NONE)
                or self.repo.first_action_kind(incident_id, besides=ActionKind.ALERT.value)
                or self.approvals.pending_for_incident(incident_id) is not None
            ):
                return
            why = "with its drop on moving inputs and no remedy better than doing nothing"
        else:
            return
        last = windows[-1].window
        text_ = (
            f"drift persisted {len(since)} windows {why}: accepted at window {last} (policy "
            f"drift.accept_after_windows = {after}); it no longer absorbs new failures"
        )
        terms = terms_of(since[-policy.persistence.n :], last)
        if policy.drift.rebaseline_on_accept:
            text_ += self._rebaseline_terms(model, incident, terms, policy)
        accept_incident(self.store, incident_id, actor=self.actor, why=text_, terms=terms)

    def _rebaseline_terms(
        self, model: str, incident: IncidentRow, terms: dict[str, Any], policy: ModelPolicy
    ) -> str:
        """Add to ``terms`` the windows whose records become the monitor's reference
        (``agent.acceptance``); returns what the acceptance's journal entry says about it."""
        stored = self.repo.recent_windows(model, policy.persistence.n)
        mine = [w for w in stored if w.window >= incident["first_window"]]
        span = rebaseline_windows(mine, policy.persistence.n)
        live = self.store.get_deployment(model)
        if span is None or live is None or live.live_version is None:
            return (
                "; the reference is not re-based: the newest windows had a quality or service "
                "finding"
            )
        terms["rebaseline"] = {"first": span[0], "last": span[1], "version": live.live_version}
        return (
            f"; the monitor now compares with the records of windows {span[0]}-{span[1]} "
            f"instead of version {live.live_version}'s registered reference (policy "
            "drift.rebaseline_on_accept; reopening the incident restores it)"
        )

    def _watch_accepted(
        self, incident: IncidentRow, history: list[WindowView], policy: ModelPolicy
    ) -> None:
        """Accepted drift is resolved once its scope has been quiet for n windows, unless it
        re-based the monitor's reference: it is quiet because of that, and stays the record of
        the reference in force (``agent.acceptance``)."""
        if ((incident.get("baseline") or {}).get("accepted") or {}).get("rebaseline"):
            return
        recent = scoped(history[-policy.persistence.n :], _scope(incident) or Scope.DRIFT)
        if len(recent) == policy.persistence.n and not any(
            qualifying(w.findings, policy) for w in recent
        ):
            self.repo.update_incident(
                incident["id"],
                state="resolved",
                last_window=history[-1].window,
                event="resolved",
                text=f"no finding in the last {policy.persistence.n} windows",
            )
        else:
            self.repo.update_incident(incident["id"], last_window=history[-1].window)

    # ------------------------------------------------------------------ deciding

    def _context(self, model: str, incident_id: int | None) -> ModelContext:
        now = self.clock()
        history = self.store.deployment_history(model, limit=200)
        lives: list[tuple[int, datetime]] = []
        first_live: dict[int, datetime] = {}
        # walk oldest → newest to find when each live version (re)started serving; a version
        # the agent itself put back (releasing a fallback, a rollback) keeps the time it first
        # went live: the agent's own remedies are not deploys to blame for the next failure
        for revision in reversed(history):
            number = revision.live_version
            if number is not None and (not lives or lives[-1][0] != number):
                since = revision.created_at
                if revision.actor == self.actor and number in first_live:
                    since = first_live[number]
                first_live.setdefault(number, revision.created_at)
                lives.append((number, since))
        lives.reverse()
        in_flight = bool(self.journal.in_flight(model))
        evidence = None if incident_id is None else self._evidence(model, incident_id)
        change_window = labels_since = served_before = None
        scope: str | None = None
        if incident_id is not None:
            incident = self.repo.get_incident(incident_id)
            scope = incident.get("scope")
            if lives:
                served_before = self.repo.windows_between(
                    model, lives[0][1], incident["first_window"]
                )
            if incident.get("scope") == Scope.PERFORMANCE.value:
                change_window = incident["first_window"]
                rows = self._incident_records(model, change_window)
                labels_since = len(labelled(rows)) if rows else None
        return ModelContext(
            model=model,
            now=now,
            incident_id=incident_id,
            incident_scope=scope,
            deployment=history[0] if history else None,
            version_health={v.number: v.health for v in self.store.list_versions(model)},
            live_history=lives,
            labels_available=self.store.count_feedback(model),
            past_actions=self.journal.past(model, now),
            action_in_flight=in_flight,
            evidence=evidence,
            change_window=change_window,
            labels_since_change=labels_since,
            windows_before_change=served_before,
            plan_repair=lambda findings: self._repair_plan(model, history, findings),
            retrain_hindsight=None
            if incident_id is None
            or change_window is None
            or not history
            or history[0].live_version is None
            else lambda since: self._retrain_hindsight(
                model, incident_id, int(change_window), int(history[0].live_version or 0), since
            ),
            own_range=None
            if change_window is None or not history or history[0].live_version is None
            else lambda: self._own_range(
                model, int(change_window), int(history[0].live_version or 0)
            ),
            retrain_aging=None
            if not history or history[0].live_version is None
            else lambda: self._aged_gains(model, int(history[0].live_version or 0)),
        )

    def _own_range(self, model: str, change_window: int, champion: int) -> OwnRange | None:
        """The champion's metric, replayed on the labelled records of each whole window before
        ``change_window`` (at most ``OWN_RANGE_WINDOWS``, none with a data-quality finding) and
        on those since (``agent.own_range``); None when it cannot be replayed here."""
        try:
            spec = self.store.get_model(model)
            answer = self._answerer(model, champion, spec)
            if answer is None or spec.task is None:
                return None
            task = spec.task

            def scored(rows: Sequence[Mapping[str, Any]]) -> tuple[str, float | None, int]:
                usable = _scorable(rows)
                if not usable:
                    return "", None, 0
                return *_replayed(task, answer, usable), len(usable)

            first = max(0, change_window - OWN_RANGE_WINDOWS)
            newest = self.repo.last_window(model)
            if newest is None:
                return None
            # the windows after ``first - 1`` are read newest first: all of them, up to the newest
            views = self.repo.recent_windows(model, newest - first + 1, after=first - 1)
            before: list[tuple[int, float, int]] = []
            for view in views:
                if view.window >= change_window or any(
                    f.kind is FindingKind.DATA_QUALITY for f in view.every_finding
                ):
                    continue
                _, value, count = scored(self._window_records(model, view.window))
                if value is not None:
                    before.append((view.window, value, count))
            metric, since, count = scored(self._incident_records(model, change_window))
            return OwnRange(metric or "metric", change_window, before, since, count)
        except Exception:  # it informs a decision, never blocks one
            log.exception("replaying the champion before window %s failed", change_window)
            return None

    def _retrain_hindsight(
        self,
        model: str,
        incident_id: int,
        change_window: int,
        champion: int,
        since_window: int | None = None,
    ) -> Hindsight | None:
        """A retrain ``retrain.hindsight_windows`` windows ago (not before the incident began;
        learning the records after ``since_window`` alone when given, and then not before a
        whole window of them), judged on the labelled records since (``agent.hindsight``);
        None when it cannot be judged here (no artifact to replay)."""
        policy = self.policy.for_model(model)
        newest = self.repo.last_window(model)
        start = hindsight_window(change_window, newest, policy, since_window)
        figures: dict[str, Any] = {"hindsight_from_window": start}
        if since_window is not None and newest is not None and start > newest:
            return Hindsight(
                False,
                f"the retrain learns the records after window {since_window} alone; it is "
                f"replayed once window {start - 1} has been learnt and window {start} judged",
                figures,
                waiting=True,
            )
        try:
            candidate, why_not = self._candidate_at(model, champion, start, policy, since_window)
            if candidate is None:
                return Hindsight(False, why_not, figures, waiting=since_window is not None)
            spec = self.store.get_model(model)
            answer = self._answerer(model, champion, spec)
            if answer is None:
                return None
            verdict = judge_in_hindsight(
                self.store,
                model,
                candidate,
                answer,
                self._incident_records(model, start),
                policy,
                start,
            )
            if verdict.decision != "promote":
                return Hindsight(
                    False, verdict.text, verdict.figures, waiting=verdict.decision == "wait"
                )
            # and the retrain's own validation now, which the retrain would refuse to go past
            checked = validate_now(self.store, model, champion, policy, since_window)
            if checked is not None and checked.refusal is not None:
                return Hindsight(
                    False, f"{verdict.text}; but now {checked.refusal}", verdict.figures
                )
            return Hindsight(True, verdict.text, verdict.figures)
        except Exception:  # like the evidence, the hindsight informs a decision, never blocks it
            log.exception("judging a retrain in hindsight for incident %s failed", incident_id)
            return None

    def _candidate_at(
        self,
        model: str,
        champion: int,
        window: int,
        policy: ModelPolicy,
        since_window: int | None = None,
    ) -> tuple[Any | None, str]:
        """``hindsight.candidate_at``, fitted once per agent: the same past window gives the
        same candidate to the hindsight check and to the aging check (the newest few kept)."""
        key = (model, champion, window, since_window)
        if key not in self._candidates:
            while len(self._candidates) > AGED_CANDIDATES + 1:
                self._candidates.pop(next(iter(self._candidates)))
            self._candidates[key] = candidate_at(
                self.store, model, champion, window, policy, since_window
            )
        return self._candidates[key]

    def _window_records(self, model: str, window: int) -> list[dict[str, Any]]:
        """The stored records of one whole window (none when its bounds are unknown)."""
        after = self.repo.window_end(model, window - 1) if window else None
        until = self.repo.window_end(model, window)
        if until is None or (window > 0 and after is None):
            return []
        return self.store.records_by_arrival(model, after=after, until=until)

    def _aged_gains(self, model: str, champion: int) -> AgedGains | None:
        """The retrain recipe replayed at each of the last ``AGED_CANDIDATES`` windows at least
        ``AGE`` old, each candidate scored against the champion on every whole window from its
        ``AGE``-th on (``agent.aging``); None when it cannot be replayed here."""
        try:
            policy = self.policy.for_model(model)
            spec = self.store.get_model(model)
            answer = self._answerer(model, champion, spec)
            newest = self.repo.last_window(model)
            if answer is None or spec.task is None or newest is None:
                return None
            task = spec.task
            first = max(1, newest - AGE - AGED_CANDIDATES + 1)
            # each window's usable records and the champion's metric on them, read once
            scored: dict[int, tuple[list[Mapping[str, Any]], float]] = {}
            cells: list[tuple[int, int, float, int]] = []
            metric = ""
            for fitted in range(first, newest - AGE + 1):
                candidate, _ = self._candidate_at(model, champion, fitted, policy)
                if candidate is None:
                    continue
                candidate_answer = answers_of(LocalPredictor(candidate, spec))
                for window in range(fitted + AGE, newest + 1):
                    if window not in scored:
                        rows = _scorable(self._window_records(model, window))
                        scored[window] = (rows, _replayed(task, answer, rows)[1] if rows else 0.0)
                    rows, champion_value = scored[window]
                    if not rows:
                        continue
                    metric, value = _replayed(task, candidate_answer, rows)
                    cells.append((fitted, window, value - champion_value, len(rows)))
            return AgedGains(metric or "metric", AGE, cells)
        except Exception:  # it informs a decision, never blocks one
            log.exception("replaying past retrains of %s failed", model)
            return None

    def _repair_plan(
        self, model: str, history: Sequence[Deployment], findings: Sequence[Finding]
    ) -> dict[str, FeatureRepair]:
        """The input repair for ``findings``, from the live version's training sample."""
        live = history[0].live_version if history else None
        if live is None:
            return {}
        spec = self.store.get_model(model)
        kinds = (FeatureType.CATEGORICAL, FeatureType.BOOLEAN)
        categorical = frozenset(f.name for f in spec.features if f.type in kinds)
        # no value mends a lost text (the most frequent name is no one's name): text findings
        # get no repair, and a null text already reaches the model as no words
        text = {f.name for f in spec.features if f.type is FeatureType.TEXT}
        findings = [f for f in findings if not text & set(f.features)]
        names = set(spec.feature_names)
        # what plan_repair reads of the findings, of the schema and of the version
        key = (
            live,
            tuple(sorted(names)),
            tuple(sorted(categorical)),
            tuple(
                (f.kind, f.evidence.get("check"), f.evidence.get("factor"), tuple(f.features))
                for f in findings
            ),
        )
        cached = self._repair_plans.get(model)
        if cached is not None and cached[0] == key:
            return dict(cached[1])
        sample = [
            {k: v for k, v in row.items() if k in names}
            for row in self.store.reference_sample(model, live) or []
        ]
        plan = plan_repair(findings, sample, categorical)
        self._repair_plans[model] = (key, plan)
        return dict(plan)

    # ------------------------------------------------------------------ evidence

    def _evidence(self, model: str, incident_id: int) -> Evidence:
        """Scores the remedies on the labelled records of the incident's windows, read only when
        the decision reaches a remedy the evidence can weigh."""

        def weigh(
            feasible: Mapping[ActionKind, Mapping[str, Any]], preferred: ActionKind
        ) -> Weighing | None:
            try:
                return scored(feasible, preferred)
            except Exception:  # the evidence informs a decision; it must never block one
                log.exception("weighing the remedies of incident %s failed", incident_id)
                return None

        def scored(
            feasible: Mapping[ActionKind, Mapping[str, Any]], preferred: ActionKind
        ) -> Weighing | None:
            settings = self.policy.for_model(model).evidence
            spec = self.store.get_model(model)
            if spec.task is None:
                return None
            incident = self.repo.get_incident(incident_id)
            every = self._incident_records(model, incident["first_window"])
            rows = labelled(every)
            if len(rows) < settings.min_labels:
                return None
            refused = refused_unlabelled(every)
            credit = 0.5 if settings.refusal_better_than_wrong else 0.0

            def widened(score: OptionScore, prepare: Prepare | None = None) -> OptionScore:
                # doing nothing and a disabled model answer none of the refused requests
                answers = score.option not in ("keep", "disable")
                answerable = answerable_refusals(spec, refused, prepare) if answers else 0
                return with_refusals(score, len(refused), answerable, credit)

            options = []
            for action, params in feasible.items():
                if action is ActionKind.REPAIR:
                    prepare = self._repair_of(params)
                    repaired = self._repaired_score(model, spec, rows, params, prepare)
                    if repaired is not None:
                        options.append(widened(repaired, prepare))
                    continue
                if action is ActionKind.DISABLE:
                    options.append(
                        widened(refused_score(spec.task, rows, settings.refusal_better_than_wrong))
                    )
                    continue
                version = params.get("to_version")
                answer = self._answerer(model, version, spec) if version is not None else None
                if answer is not None:
                    options.append(
                        widened(
                            answered_score(spec.task, spec, rows, answer, action.value, version)
                        )
                    )
            return choose(
                widened(served_score(spec.task, rows)),
                options,
                preferred.value,
                settings.tolerance,
                settings.standard_errors,
            )

        return weigh

    def _repaired_score(
        self,
        model: str,
        spec: ModelSpec,
        rows: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        prepare: Prepare,
    ) -> OptionScore | None:
        """The live version's answers to the logged inputs once mended by ``prepare``, the
        repair ``params`` describe."""
        version = params.get("version")
        answer = self._answerer(model, version, spec) if version is not None else None
        if answer is None:
            return None
        return answered_score(
            spec.task,
            spec,
            rows,
            answer,
            ActionKind.REPAIR.value,
            version,
            note="inputs repaired: " + ", ".join(sorted(params["input_repair"])),
            prepare=prepare,
        )

    @staticmethod
    def _repair_of(params: Mapping[str, Any]) -> Prepare:
        """The repair a decision's parameters describe, as a function of request dicts."""
        plan = {
            name: FeatureRepair.model_validate(rule)
            for name, rule in params["input_repair"].items()
        }
        return lambda inputs: repair_instances(inputs, plan)

    def _incident_records(self, model: str, first_window: int) -> list[dict[str, Any]]:
        """The stored records of the windows from ``first_window`` to the newest (at most
        ``EVIDENCE_RECORDS``, the newest kept); none when the windows' bounds are unknown."""
        newest = self.repo.last_window(model)
        key = (model, first_window, newest)
        if self._records_read[0] == key:  # one decision reads them up to three times
            return self._records_read[1]
        until = None if newest is None else self.repo.window_end(model, newest)
        after = self.repo.window_end(model, first_window - 1) if first_window > 0 else None
        if until is None or (first_window > 0 and after is None):
            return []
        rows = self.store.records_by_arrival(
            model, after=after, until=until, limit=EVIDENCE_RECORDS, newest_first=True
        )
        rows.reverse()
        self._records_read = (key, rows)
        return rows

    def _answerer(self, model: str, version: int, spec: ModelSpec) -> Answer | None:
        """A version's answers to logged inputs, from its model loaded once per agent."""
        predictor = self._predictor(model, version, spec)
        return None if predictor is None else answers_of(predictor)

    def _decide(
        self,
        model: str,
        incident: IncidentRow,
        windows: list[WindowView],
        policy: ModelPolicy,
    ) -> Decision:
        ctx = self._context(model, incident["id"])
        first = decide(windows, ctx, policy)
        if first.persistent:
            memory = recall(
                self.repo,
                model,
                first.diagnosis.value,
                [k.value for k in first.kinds],
                first.features,
                exclude=incident["id"],
            )
            if memory is not None:
                ctx.memory_hint = memory.hint
                ctx.memory_action = memory.action if memory.worked else None
                return decide(windows, ctx, policy)
        return first

    def _apply(
        self,
        model: str,
        incident: IncidentRow,
        decision: Decision,
        windows: list[WindowView],
        policy: ModelPolicy,
    ) -> None:
        incident_id = incident["id"]
        last = windows[-1].window
        if not decision.persistent:
            since = [w for w in windows if w.window >= incident["first_window"]]
            quiet = not any(qualifying(w.findings, policy) for w in since[-policy.persistence.n :])
            if incident["diagnosis"] not in (None, Diagnosis.NOISE.value):
                # it was a persistent failure (people were told): it stays open while it fades
                # and is resolved once gone, never relabelled "noise" after the fact
                if quiet:
                    self.repo.update_incident(
                        incident_id,
                        state="resolved",
                        last_window=last,
                        event="resolved",
                        text=f"no finding in the last {policy.persistence.n} windows",
                    )
                else:
                    self.repo.update_incident(incident_id, last_window=last)
            elif len(since) >= policy.persistence.n * 2 or (
                len(since) >= policy.persistence.n and quiet
            ):
                self.repo.add_decision(incident_id, decision)
                self.repo.update_incident(
                    incident_id,
                    state="dismissed",
                    diagnosis=Diagnosis.NOISE.value,
                    last_window=last,
                    event="dismissed",
                    text=decision.rationale,
                )
            else:
                self.repo.update_incident(incident_id, last_window=last)
            return
        fields: dict[str, Any] = {
            "diagnosis": decision.diagnosis.value,
            "severity": decision.severity.value,
            "kinds": [k.value for k in decision.kinds],
            "features": decision.features,
            "last_window": last,
        }
        if decision.action is ActionKind.NONE:
            if incident["diagnosis"] != decision.diagnosis.value:
                decision_id = self.repo.add_decision(incident_id, decision)
                self.repo.update_incident(
                    incident_id,
                    event="decision",
                    text=f"#{decision_id}: {decision.rationale}",
                    **fields,
                )
            else:
                self.repo.update_incident(incident_id, **fields)
            self._maybe_clear(incident, windows, policy)
            return
        decision_id = self.repo.add_decision(incident_id, decision)
        self.repo.update_incident(
            incident_id, event="decision", text=f"#{decision_id}: {decision.rationale}", **fields
        )
        story = {
            "incident_id": incident_id,
            "severity": decision.severity.value,
            "diagnosis": decision.diagnosis.value,
            "rationale": decision.rationale,
            "confidence": decision.confidence,
        }
        if decision.needs_approval:
            asked = self.approvals.list(model=model)
            refused = any(
                a["incident_id"] == incident_id
                and a["action"] == decision.action.value
                and a["state"] in ("rejected", "expired")
                for a in asked
            )
            if not refused and not any(
                a["incident_id"] == incident_id and a["state"] == "pending" for a in asked
            ):
                approval_id = self.approvals.request(
                    model,
                    decision.action,
                    decision.params,
                    expiry_minutes=policy.approval.expiry_minutes,
                    decision_id=decision_id,
                    incident_id=incident_id,
                    actor=self.actor,
                    now=self.clock(),
                )
                self.repo.update_incident(
                    incident_id,
                    event="approval_requested",
                    text=f"approval {approval_id} requested for {decision.action.value}",
                )
                self._alert(
                    model,
                    incident_id,
                    decision_id,
                    {**story, "title": f"{model}: {decision.action.value} awaits approval"},
                )
            return
        if decision.action is ActionKind.ALERT:
            self._alert(model, incident_id, decision_id, {**story, "action": "alert"})
            self._maybe_clear(incident, windows, policy)
            return
        action_id = self.journal.create(
            model,
            decision.action,
            decision.params,
            actor=self.actor,
            incident_id=incident_id,
            decision_id=decision_id,
        )
        alert_id = None
        if decision.notify:
            # journaled together with the remedy, so an agent killed in between still sends it
            # when restarted (recover() runs in-flight actions oldest first: remedy, then alert);
            # the alert reads the remedy's outcome from the journal when it is sent
            alert_id = self.journal.create(
                model,
                ActionKind.ALERT,
                {**story, "remedy_action_id": action_id},
                actor=self.actor,
                incident_id=incident_id,
                decision_id=decision_id,
            )
        self.repo.update_incident(
            incident_id,
            state="acting",
            event="acting",
            text=f"action {action_id}: {decision.action}",
        )
        crashpoint("journaled")
        row = self.operations.run_action(action_id)
        self._after_action(row)
        if alert_id is not None:
            self.operations.run_action(alert_id)

    def _alert(
        self, model: str, incident_id: int, decision_id: int | None, params: dict[str, Any]
    ) -> ActionRow:
        action_id = self.journal.create(
            model,
            ActionKind.ALERT,
            params,
            actor=self.actor,
            incident_id=incident_id,
            decision_id=decision_id,
        )
        return self.operations.run_action(action_id)

    def _maybe_clear(
        self, incident: IncidentRow, windows: list[WindowView], policy: ModelPolicy
    ) -> None:
        """Close an alert-only incident once its condition has been gone for n windows."""
        recent = windows[-policy.persistence.n :]
        if len(recent) == policy.persistence.n and not any(
            qualifying(w.findings, policy) for w in recent
        ):
            self.repo.update_incident(
                incident["id"],
                state="resolved",
                event="resolved",
                text=f"no finding in the last {policy.persistence.n} windows",
            )

    # ------------------------------------------------------------------ after acting

    def _after_action(self, row: ActionRow) -> None:
        """Move the incident on after a remedy finished (also after a crash and restart)."""
        if remedy_for(row["kind"]).verifies is VerifyTarget.NOTHING or row["incident_id"] is None:
            return
        incident = self.repo.get_incident(row["incident_id"])
        if incident["state"] not in ("open", "acting"):
            return
        if row["state"] == "done":
            baseline = dict(incident["baseline"])
            baseline |= {
                "action_id": row["id"],
                "verify_after": self.repo.last_window(row["model"]),
            }
            self.repo.update_incident(
                incident["id"],
                state="verifying",
                baseline=baseline,
                event="verifying",
                text=f"action {row['id']} ({row['kind']}) done; watching the next windows",
            )
        elif row["state"] == "failed":
            self._escalate(
                row["model"], incident, f"action {row['id']} ({row['kind']}) failed: {row['error']}"
            )

    def _acting(self, incident: IncidentRow) -> None:
        """An incident whose action was journaled: pick up where a crash or approval left it."""
        actions = [a for a in self.journal.list(incident_id=incident["id"]) if a["kind"] != "alert"]
        if actions:
            newest = actions[0]
            if newest["state"] in ("pending", "running"):
                newest = self.operations.run_action(newest["id"])
            self._after_action(newest)

    def _verify(self, model: str, incident: IncidentRow, policy: ModelPolicy) -> str:
        baseline = incident["baseline"]
        action = self.journal.get(baseline["action_id"])
        after = self.repo.recent_windows(
            model, policy.verify.max_wait_windows, baseline["verify_after"]
        )
        quality = incident["diagnosis"] == Diagnosis.DATA_QUALITY.value
        if quality:
            return self._verify_quality(model, incident, action, after, policy)
        watching = self._watching_champion(incident, action)
        # the replaced version's shadow answers, per window, while the fallback serves
        shadows: list[list[dict[str, Any]]] = []
        if watching:
            if action["state"] == "done":
                champion = int(action["result"]["champion_shadow"])
                shadows = [self._shadow_rows(model, w.window, champion) for w in after]
            outcome = self._hand_back(model, incident, action, after, policy, shadows)
            if outcome is not None:
                return outcome
        if action["kind"] == ActionKind.RETRAIN.value and action["result"].get("watching"):
            return self._watch_candidate(model, incident, action, after, policy)
        if len(after) < policy.verify.windows and action["result"].get("promoted") is not False:
            return "waiting"
        verdict = verify(
            after,
            baseline.get("signals", {}),
            incident["kinds"],
            policy,
            {**action["params"], **action["result"]},  # the weighing is in the parameters
            action_kind=action["kind"],
            scope=_scope(incident),
            diagnosis=incident["diagnosis"],
            accepted=self.repo.accepted_incidents(model),
        )
        now_kept = None
        if not verdict.recovered:
            verdict, now_kept = self._against_doing_nothing(
                model, incident, action, verdict, policy
            )
            if now_kept is not None and len(after) < policy.verify.max_wait_windows:
                # no worse than doing nothing so far, but not yet shown better: a few windows
                # of drifting data are a noisy judge, so the remedy stays and the incident keeps
                # watching (and keeps its own findings) while the evidence grows
                if baseline.get("kept_watching") != action["id"]:  # said once per action
                    self.repo.update_incident(
                        incident["id"],
                        baseline={**baseline, "kept_watching": action["id"]},
                        event="watching",
                        text=f"{verdict.text}. Action {action['id']} ({action['kind']}) stays "
                        f"in place: {now_kept}; judged again on every window, up to "
                        f"{policy.verify.max_wait_windows}",
                    )
                return "waiting"
        self.repo.add_verification(
            model,
            incident["id"],
            action["id"],
            "recovered" if verdict.recovered else "not_recovered",
            verdict.windows,
            baseline.get("signals", {}),
            verdict.observed,
            verdict.text,
        )
        self.store.audit(
            self.actor,
            "verification",
            f"{model}/incident/{incident['id']}",
            {"recovered": verdict.recovered, "action": action["id"]},
        )
        if verdict.recovered and any(shadows):
            self.repo.update_incident(
                incident["id"],
                baseline={**baseline, "fallback_verified": True},
                event="verified",
                text=f"{verdict.text}. Version {action['result']['champion_shadow']} keeps "
                "answering copies of the requests in shadow and takes the traffic back once "
                "they look healthy",
            )
            return "waiting"
        if verdict.recovered:
            live = self.store.get_deployment(model)
            if live is not None and live.live_version is not None:
                self.store.set_version_health(model, live.live_version, "healthy")
            self.repo.update_incident(
                incident["id"], state="resolved", event="resolved", text=verdict.text
            )
            return "recovered"
        kept = now_kept or better_than_doing_nothing(
            verdict_windows(after, verdict), action["params"], policy.evidence.tolerance
        )
        if kept is not None and remedy_for(action["kind"]).replaces_live:
            # short of the baseline, but undoing it would serve worse: it stays, people decide
            self._escalate(
                model,
                incident,
                f"verification failed: {verdict.text}. Action {action['id']} "
                f"({action['kind']}) stays in place: {kept}.",
            )
            return "not_recovered"
        reverted = ""
        if action["state"] == "done" and action["before_revision"] != action["after_revision"]:
            live = self.store.get_deployment(model)
            self.operations.undo_action(action["id"], keep_later=True)
            reverted = f" Action {action['id']} ({action['kind']}) was reverted."
            retrained = action["kind"] in (ActionKind.RETRAIN.value, ActionKind.PROMOTE.value)
            if retrained and live and live.live_version:
                self.store.set_version_health(model, live.live_version, "unhealthy")
            if action["kind"] == ActionKind.PROMOTE.value:
                # undoing the promotion puts the candidate back as a canary: the retrain that
                # staged it is undone too, so an unhealthy version serves no traffic at all
                for staged in self.journal.list(incident_id=incident["id"]):
                    if staged["kind"] == ActionKind.RETRAIN.value and staged["state"] == "done":
                        self.operations.undo_action(staged["id"], keep_later=True)
                        reverted += f" Action {staged['id']} (retrain) was reverted."
        self._escalate(model, incident, f"verification failed: {verdict.text}.{reverted}")
        return "not_recovered"

    def _against_doing_nothing(
        self,
        model: str,
        incident: IncidentRow,
        action: ActionRow,
        verdict: Verdict,
        policy: ModelPolicy,
    ) -> tuple[Verdict, str | None]:
        """A rollback, fallback or promotion for a performance drop that missed the pre-failure
        baseline is judged against doing nothing: the version it put in place and the one it
        replaced both answer the logged inputs of every labelled record since the incident
        began (before the action and after it; after it only for a promotion) offline, scored
        on their labels. Real data keeps drifting, so the baseline may be out of reach for any
        version, and two windows of it are a noisy judge; the whole incident is the larger
        sample. A remedy clearly better
        than doing nothing has done its part (recovered: the drop that remains is the world's,
        for the performance incident that follows); one within the tolerance of it is not
        undone (the second value says why): undoing it would serve no better."""
        result = action["result"]
        replaced, target = result.get("from_version"), result.get("to_version")
        if (
            _scope(incident) is not Scope.PERFORMANCE
            or not remedy_for(action["kind"]).replaces_live
            or replaced is None
            or replaced == target
            or target is None
        ):
            return verdict, None
        first = incident["first_window"]
        if action["kind"] == ActionKind.PROMOTE.value:
            # the candidate learnt from the incident's first records, and a version fitted to
            # a few weeks of a drifting stream can serve well for a while and worse after: it
            # is judged on the records since its promotion, which it has not seen
            first = max(first, int(incident["baseline"]["verify_after"]) + 1)
        rows = labelled(self._incident_records(model, first))
        spec = self.store.get_model(model)
        if spec.task is None or len(rows) < policy.evidence.min_labels:
            return verdict, None
        remedy_answer = self._answerer(model, int(target), spec)
        nothing_answer = self._answerer(model, int(replaced), spec)
        if remedy_answer is None or nothing_answer is None:
            return verdict, None
        remedy = answered_score(spec.task, spec, rows, remedy_answer, action["kind"], int(target))
        nothing = answered_score(spec.task, spec, rows, nothing_answer, "keep", int(replaced))
        same = margin(nothing, policy.evidence.tolerance)
        if remedy.value < nothing.value - same:
            return verdict, None
        if remedy.value <= nothing.value + same:
            return verdict, (
                f"since the incident began, {remedy.describe()}, against {nothing.describe()} "
                "had nothing been done"
            )
        return Verdict(
            True,
            verdict.windows,
            verdict.observed,
            [
                *verdict.reasons,
                f"but since the incident began, {remedy.describe()}, against "
                f"{nothing.describe()} had nothing been done: the remedy helps, and what is "
                "left of the drop is not the replaced version's",
            ],
        ), None

    @staticmethod
    def _watching_champion(incident: IncidentRow, action: ActionRow) -> bool:
        """A fallback for a service failure whose replaced version answers in shadow."""
        return (
            _scope(incident) is Scope.SERVICE
            and action["kind"] == ActionKind.FALLBACK.value
            and action["state"] in ("done", "undone")
            and action["result"].get("champion_shadow") is not None
        )

    def _shadow_rows(self, model: str, window: int, version: int) -> list[dict[str, Any]]:
        """``version``'s shadow answers among the records of one stored window."""
        until = self.repo.window_end(model, window)
        after = self.repo.window_end(model, window - 1) if window > 0 else None
        if until is None:
            return []
        rows = self.store.records_by_arrival(model, after=after, until=until, shadow=True)
        return [r for r in rows if r["version"] == version]

    def _hand_back(
        self,
        model: str,
        incident: IncidentRow,
        action: ActionRow,
        after: list[WindowView],
        policy: ModelPolicy,
        shadows: list[list[dict[str, Any]]],
    ) -> str | None:
        """A fallback that took the traffic from a failing version gives it back once that
        version's shadow answers look healthy for ``verify.release_after_windows`` windows
        (every window the fallback serves a healthy champion's traffic, it serves it worse);
        the incident is resolved when the symptom stays away ``verify.windows`` windows after,
        and decided anew when it comes back. ``shadows`` holds that version's shadow answers
        in each window of ``after`` while the fallback serves. None: the fallback itself is
        still to verify."""
        baseline = incident["baseline"]
        champion = int(action["result"]["champion_shadow"])
        if action["state"] == "done":
            if not any(shadows):
                return None  # nothing to watch (no stored answers yet): verified as it is
            healthy = 0
            for rows in shadows:
                trouble = champion_trouble(rows, baseline.get("signals", {}))
                healthy = 0 if trouble else healthy + 1
            if healthy >= policy.verify.release_after_windows:
                self.operations.undo_action(action["id"], keep_later=True)
                self.repo.update_incident(
                    incident["id"],
                    baseline={**baseline, "released_at": after[-1].window},
                    event="released",
                    text=f"version {champion} answered its shadow copies healthily for "
                    f"{healthy} window(s): action {action['id']} (fallback) reverted, version "
                    f"{champion} serves again; watching that it stays healthy",
                )
                return "waiting"
            return "waiting" if baseline.get("fallback_verified") else None
        released_at = baseline.get("released_at")
        if released_at is None:
            return None
        since = [w for w in after if w.window > released_at]
        collapsed = incident["diagnosis"] == Diagnosis.COLLAPSED_PREDICTIONS.value
        broken = [
            w.window
            for w in since
            if any(
                is_collapse(f) or not collapsed
                for f in qualifying(in_scope(w.findings, Scope.SERVICE), policy)
            )
        ]
        if broken:
            self.repo.update_incident(
                incident["id"],
                state="open",
                event="broken again",
                text=f"version {champion} failed again in window {broken[0]} after the fallback "
                "was released: deciding anew",
            )
            return "not_recovered"
        if len(since) < policy.verify.windows:
            return "waiting"
        text = (
            f"version {champion} served {len(since)} windows without the failure after the "
            f"fallback (action {action['id']}) was released"
        )
        self.repo.add_verification(
            model,
            incident["id"],
            action["id"],
            "recovered",
            [w.window for w in since],
            baseline.get("signals", {}),
            {},
            text,
        )
        self.repo.update_incident(incident["id"], state="resolved", event="resolved", text=text)
        return "recovered"

    def _watch_candidate(
        self,
        model: str,
        incident: IncidentRow,
        action: ActionRow,
        after: list[WindowView],
        policy: ModelPolicy,
    ) -> str:
        """A retrained candidate serving as canary or shadow: promote it once its production
        records hold up against the champion's, remove it when they do not or never come."""
        result = action["result"]
        candidate, champion = result["candidate_version"], result["champion_version"]
        earlier = [
            a
            for a in self.journal.list(incident_id=incident["id"])
            if a["kind"] == ActionKind.PROMOTE.value and a["params"].get("version") == candidate
        ]
        if earlier:  # promoted before a crash, which left the incident pointing at the retrain
            self._verify_promotion(incident, earlier[0]["id"], "promoted before a restart")
            return "promoted"
        spec = self.store.get_model(model)
        verdict = judge_canary(
            self.store,
            model,
            candidate,
            champion,
            result["watching"],
            policy,
            lambda version: self._answerer(model, version, spec),
        )
        upstream = self._upstream_of(model, incident)
        if verdict.decision == "promote" and upstream is not None:
            # the requests of a broken pipeline or a failing service judge neither version: a
            # candidate that answers nulls better is not the better model once they are gone
            verdict = CanaryVerdict(
                "wait",
                [*verdict.reasons, f"incident {upstream['id']} ({upstream['scope']}) is open"],
                verdict.figures,
            )
        if verdict.decision == "wait" and len(after) < policy.verify.max_wait_windows:
            return "waiting"
        windows = [w.window for w in after]
        if verdict.decision == "promote":
            self.repo.add_verification(
                model,
                incident["id"],
                action["id"],
                "canary_passed",
                windows,
                {},
                verdict.figures,
                verdict.text,
            )
            promote_id = self.journal.create(
                model,
                ActionKind.PROMOTE,
                {"version": candidate, "validated": True, "canary": verdict.text},
                actor=self.actor,
                incident_id=incident["id"],
                decision_id=action.get("decision_id"),
            )
            row = self.operations.run_action(promote_id)
            if row["state"] != "done":
                self._escalate(
                    model, incident, f"promoting version {candidate} failed: {row['error']}"
                )
                return "not_recovered"
            self._verify_promotion(
                incident, promote_id, f"{verdict.text}; version {candidate} promoted"
            )
            return "promoted"
        why = (
            verdict.text
            if verdict.decision == "reject"
            else (
                f"no verdict on the {result['watching']} after {len(after)} windows: "
                + "; ".join(verdict.reasons)
            )
        )
        self.repo.add_verification(
            model,
            incident["id"],
            action["id"],
            "canary_failed",
            windows,
            {},
            verdict.figures,
            why,
        )
        self.operations.undo_action(action["id"], keep_later=True)
        self.store.set_version_health(model, candidate, "unhealthy")
        self._escalate(
            model, incident, f"{why}. Version {candidate} was removed as {result['watching']}."
        )
        return "not_recovered"

    def _verify_promotion(self, incident: IncidentRow, promote_id: int, text: str) -> None:
        """From now on the incident is verified on the promotion, against the same baseline."""
        baseline = dict(incident["baseline"]) | {
            "action_id": promote_id,
            "verify_after": self.repo.last_window(incident["model"]),
        }
        self.repo.update_incident(
            incident["id"],
            baseline=baseline,
            event="promoted",
            text=f"{text} (action {promote_id}); watching the next windows",
        )

    def _verify_quality(
        self,
        model: str,
        incident: IncidentRow,
        action: ActionRow,
        after: list[WindowView],
        policy: ModelPolicy,
    ) -> str:
        """Pipeline failures: hold the remedy while quality is broken, release it as soon as
        quality is back (``verify.release_after_windows``: every window a fallback serves clean
        data it serves worse than the champion would), resolve once it stayed back for
        ``verify.windows``; broken again after the release, the incident is decided anew.

        Quality is judged by the symptom the remedy targeted (``verify.quality_symptom``: after
        a repair, the defects of the features it mends). A remedy that mends inputs is the
        identity on clean requests: it stays in place when it served better than doing
        nothing since it was taken (``_mended_against_doing_nothing``), so the same defect
        coming back is mended at once instead of after ``persistence.n`` windows anew."""
        symptom = quality_symptom(action["kind"], action["result"])
        clean = 0
        for window in after:
            broken = any(symptom(f) for f in qualifying(window.findings, policy))
            clean = 0 if broken else clean + 1
        released = action["state"] == "undone"
        baseline = incident["baseline"]
        kept = baseline.get("kept_mending") == action["id"]
        if clean >= policy.verify.release_after_windows and action["state"] == "done" and not kept:
            stays = self._mended_against_doing_nothing(model, incident, action, policy)
            if stays is not None:
                kept = True
                self.repo.update_incident(
                    incident["id"],
                    baseline={**baseline, "kept_mending": action["id"]},
                    event="kept",
                    text=f"data quality back for {clean} window(s); action {action['id']} "
                    f"({action['kind']}) stays in place: {stays}",
                )
            else:
                self.operations.undo_action(action["id"], keep_later=True)
                released = True
                self.repo.update_incident(
                    incident["id"],
                    event="released",
                    text=f"data quality back for {clean} window(s); action {action['id']} "
                    f"({action['kind']}) reverted, watching that it stays back",
                )
        if clean >= policy.verify.windows:
            outcome = "stays in place" if kept else "reverted"
            text_ = f"data quality back for {clean} windows; action {action['id']} {outcome}"
            self.repo.add_verification(
                model,
                incident["id"],
                action["id"],
                "recovered",
                [w.window for w in after],
                incident["baseline"].get("signals", {}),
                {},
                text_,
            )
            self.repo.update_incident(
                incident["id"], state="resolved", event="resolved", text=text_
            )
            return "recovered"
        if released and clean == 0:
            self.repo.update_incident(
                incident["id"],
                state="open",
                event="broken again",
                text="data quality broke again after the remedy was released: deciding anew",
            )
            return "not_recovered"
        if len(after) >= policy.verify.max_wait_windows:
            self._escalate(model, incident, f"data quality still broken after {len(after)} windows")
            return "not_recovered"
        return "waiting"

    def _mended_against_doing_nothing(
        self, model: str, incident: IncidentRow, action: ActionRow, policy: ModelPolicy
    ) -> str | None:
        """Why a remedy that mends inputs stays once quality is back, or None when it is to be
        released: it served (the recorded answers, given the mended inputs) better than doing
        nothing would have (the same version answering the logged inputs as they came, which
        the records keep unmended) on the labelled records since it was taken. One that served
        no better (on the flights' weather nulls, 0.7526 against 0.7562) did not help and is
        released; without such evidence, or after another kind of remedy, it is released as
        before."""
        if not remedy_for(action["kind"]).mends_inputs or action["state"] != "done":
            return None
        rules = (action["params"].get("input_repair") or {}).values()
        if any(rule.get("divide_all") for rule in rules):
            return None  # it rescales clean values too: released once the inputs are clean
        version = action["params"].get("version")
        spec = self.store.get_model(model)
        if version is None or spec.task is None:
            return None
        rows = labelled(
            self._incident_records(model, int(incident["baseline"]["verify_after"]) + 1)
        )
        answer = self._answerer(model, int(version), spec)
        if len(rows) < policy.evidence.min_labels or answer is None:
            return None
        served = served_score(spec.task, rows, action["kind"])
        nothing = answered_score(spec.task, spec, rows, answer, "keep", int(version))
        if served.value <= nothing.value:
            return None
        return (
            f"since it was taken, {served.describe()}, against {nothing.describe()} had "
            "nothing been done; it changes only the values broken the way it names"
        )

    def _escalate(self, model: str, incident: IncidentRow, why: str) -> None:
        """Hand the incident to a human: an alert carrying the whole story."""
        full = self.repo.get_incident(incident["id"])
        story = " | ".join(f"{e['event']}: {e['text']}" for e in full["timeline"])
        self.repo.update_incident(incident["id"], state="escalated", event="escalated", text=why)
        self._alert(
            model,
            incident["id"],
            None,
            {
                "title": f"{model}: incident {incident['id']} escalated to a human",
                # one level up from the incident's, and never below high
                "severity": _escalated(Severity(full["severity"])).value,
                "diagnosis": full["diagnosis"],
                "rationale": why,
                "story": story,
                "actions": [
                    {"id": a["id"], "kind": a["kind"], "state": a["state"]} for a in full["actions"]
                ],
                "verifications": [v["details"] for v in full["verifications"]],
            },
        )

    def _learn_health(self, model: str, history: list[WindowView], policy: ModelPolicy) -> None:
        """A live version that served n windows in a row without a finding of its own is known
        healthy. Drift findings do not count against it: real inputs drift all the time, and a
        version that keeps serving well through drift is the one to roll back to."""
        recent = history[-policy.persistence.n :]
        if len(recent) < policy.persistence.n or any(
            scope_of(f) is not Scope.DRIFT for w in recent for f in qualifying(w.findings, policy)
        ):
            return
        deployment = self.store.get_deployment(model)
        if deployment is None or deployment.live_version is None:
            return
        if self.store.get_version(model, deployment.live_version).health == "unknown":
            self.store.set_version_health(model, deployment.live_version, "healthy")

    # ------------------------------------------------------------------ forever

    def run_forever(
        self,
        interval_s: float = 30.0,
        *,
        stop: threading.Event | None = None,
        lock_path: Path | None = None,
        on_pass: Callable[[list[dict[str, Any]]], None] | None = None,
        lock_timeout_s: float = 10.0,
    ) -> None:
        """Repeat ``run_once`` every ``interval_s`` seconds while holding the leadership; an
        agent without it tries again every ``interval_s``, so it takes over within that of
        the leader's death (within ``lock_timeout_s`` more when the leader's host is lost).
        The policy is recorded in the audit log (when it changed) once this agent leads."""
        stop = stop or threading.Event()
        leader = self.leadership = Leadership(self.store, lock_path, timeout_s=lock_timeout_s)
        recorded = False
        try:
            while not stop.is_set():
                if leader.acquire():
                    if not recorded:
                        record_policy(self.store, self.policy, self.actor)
                        recorded = True
                    summaries = self.run_once()
                    if on_pass is not None:
                        on_pass(summaries)
                stop.wait(interval_s)
        finally:
            if isinstance(self.source, PooledSource):
                self.source.close()  # a standby agent holds no workers
            leader.release()


__all__ = [
    "Agent",
    "default_source",
]
