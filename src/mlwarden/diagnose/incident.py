"""Diagnosis of an incident from what mlwarden measured: findings, signals, events and rows.

``diagnose_incident`` is a pure function: the agent passes what it holds for one incident and
gets an :class:`IncidentDiagnosis` (ranked playbooks with the evidence that matched, culprit
features, segments, timeline, severity with its reason, a plain-English explanation) that
exports to Markdown, HTML and JSON following the root-cause template (symptom, impact,
timeline, hypotheses, investigation, resolution). It is not the agent's ``policy.Diagnosis``,
the row of the decision table an incident's findings add up to, which it may name as
``agent_diagnosis``.

>>> from mlwarden.domain import Finding
>>> f = Finding(kind="data_quality", detector="null_rate", features=["vicprice"],
...             statistic="null_rate", score=0.61, threshold=0.05, window=7, message="nulls")
>>> diagnose_incident([f]).matches[0].id
'feature_null_explosion'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from mlwarden.diagnose.checks import fill_checks
from mlwarden.diagnose.culprits import Culprit, rank_culprits
from mlwarden.diagnose.facts import Facts, escalate
from mlwarden.diagnose.loader import load_playbooks
from mlwarden.diagnose.report import render_html, render_markdown
from mlwarden.diagnose.schema import Playbook, SignalPattern
from mlwarden.diagnose.segments import Segment, find_segments
from mlwarden.diagnose.timeline import Change, TimelineEntry, detect_changes, split_signal
from mlwarden.domain import Finding, FindingKind, Severity

# A deploy/config event counts as "just before" the incident within this many windows.
EVENT_HORIZON_WINDOWS = 3
# Weight of each finding kind a playbook lists, on top of its explicit signal patterns.
KIND_WEIGHT = 0.5
# Findings up to this many windows after the first one are the incident's onset: full weight.
ONSET_WINDOWS = 2
# What a later finding, or a signal change standing in for a missing finding, counts for.
LATE_WEIGHT = 0.5
# Lost per upstream kind of evidence a playbook leaves unexplained.
UNEXPLAINED_PENALTY = 2.0
# Where each kind of finding sits in the usual chain of cause and effect, most upstream first:
# broken data causes serving errors, both move the inputs, moved inputs move the predictions,
# and moved predictions show up as lost performance once labels arrive.
CAUSAL_ORDER: dict[FindingKind, int] = {
    FindingKind.DATA_QUALITY: 0,
    FindingKind.FRESHNESS: 1,
    FindingKind.ERROR_RATE: 1,
    FindingKind.LATENCY: 1,
    FindingKind.DATA_DRIFT: 2,
    FindingKind.ANOMALY: 2,
    FindingKind.PREDICTION_DRIFT: 3,
    FindingKind.CONCEPT_DRIFT: 4,
}

_NUMBER_WORDS = [
    "no",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
]
_STAT_NAMES = {
    "null_rate": "null rate",
    "psi": "PSI",
    "out_of_range_rate": "out-of-range rate",
    "unseen_rate": "unseen-category rate",
    "error_rate": "error rate",
    "js": "Jensen-Shannon distance",
    "wasserstein": "Wasserstein distance",
}


RankedPlaybook = tuple[Playbook, float, float, list[str]]


class IncidentMatch(BaseModel):
    id: str
    title: str
    score: float
    confidence: float
    severity: Severity
    evidence: list[str]


class IncidentDiagnosis(BaseModel):
    """Everything known about one incident's cause, ready to show or export."""

    model: str | None = None
    generated_at: str | None = None
    severity: Severity
    severity_reasons: list[str]
    matches: list[IncidentMatch]
    culprits: list[Culprit]
    segments: list[Segment]
    timeline: list[TimelineEntry]
    explanation: str
    symptoms: list[str]
    impact: list[str]
    checks: list[dict[str, str]] = Field(default_factory=list)
    actions: list[dict[str, str]] = Field(default_factory=list)
    confirm: list[str] = Field(default_factory=list)
    resolution: list[str] = Field(default_factory=list)
    facts: Facts = Field(default_factory=Facts)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        return render_markdown(self)

    def to_html(self) -> str:
        return render_html(self)


def _finding_fields(f: Finding) -> list[str]:
    ev = f.evidence or {}
    return [
        str(x).lower()
        for x in (f.detector, f.statistic, ev.get("check"), ev.get("signal"))
        if x is not None
    ]


def _finding_matches(p: SignalPattern, f: Finding) -> bool:
    if p.kind == "event" or f.kind != p.kind:
        return False
    return p.check is None or any(p.check.lower() in field for field in _finding_fields(f))


def _event_type(e: dict[str, Any]) -> str:
    return str(e.get("type", e.get("kind", ""))).lower()


def _relevant_events(
    events: Sequence[dict[str, Any]], first_window: int | None
) -> list[dict[str, Any]]:
    out = []
    for e in events:
        w = e.get("window")
        if (
            first_window is None
            or not isinstance(w, int)
            or (first_window - EVENT_HORIZON_WINDOWS <= w <= first_window)
        ):
            out.append(e)
    return out


def _describe_finding(f: Finding) -> str:
    feats = f" on {', '.join(f.features)}" if f.features else ""
    where = f" in window {f.window}" if f.window is not None else ""
    if f.evidence.get("type") == "text" and f.message:
        # a text finding's statistic (oov_rate_increase) means little to a reader: its message
        # says what changed in words
        return f"{f.message}{where}"
    return (
        f"{f.kind.value} finding '{f.statistic}'{feats} "
        f"(score {f.score:.3g} vs threshold {f.threshold:.3g}){where}"
    )


def match_playbooks(
    findings: Sequence[Finding],
    events: Sequence[dict[str, Any]] = (),
    playbooks: Sequence[Playbook] | None = None,
    changes: Sequence[Change] = (),
) -> list[RankedPlaybook]:
    """Playbooks ranked by weighted pattern matches: ``(playbook, score, confidence, evidence)``.

    A pattern scores its weight times the strongest finding that matches it. A detector finding
    from the incident's first windows is full evidence; one that came later
    (``ONSET_WINDOWS`` after the first) and a signal change standing in for a kind no detector
    flagged (a performance drop seen only in signals still points at concept drift) count
    half. A hypothesis must explain the most upstream evidence: a playbook loses
    ``UNEXPLAINED_PENALTY`` for each kind of finding it does not list that sits upstream of
    everything it does list (:data:`CAUSAL_ORDER`: a unit change explains the prediction drift
    it causes, not the other way round). A pattern marked ``required`` that does not match rules
    the playbook out.
    """
    playbooks = load_playbooks() if playbooks is None else list(playbooks)
    weighted = _weighted_findings(findings, changes)
    windows = [f.window for f, _ in weighted if f.window is not None]
    first_window = min(windows) if windows else None
    near_events = _relevant_events(events, first_window)
    kind_strength: dict[FindingKind, float] = {}
    for f, strength in weighted:
        kind_strength[f.kind] = max(kind_strength.get(f.kind, 0.0), strength)
    ranked = []
    for pb in playbooks:
        score, total, evidence, positive, ruled_out = 0.0, 0.0, [], False, False
        for p in pb.symptoms.signal_patterns:
            total += p.weight
            if p.kind == "event":
                events = [
                    e for e in near_events if p.check is None or p.check.lower() in _event_type(e)
                ]
                if events and not p.absent:
                    score += p.weight
                    positive = True
                    e = events[0]
                    what = e.get("description", e.get("message", ""))
                    evidence.append(f"{_event_type(e)} event: {what}".rstrip(": "))
                ruled_out |= p.required and not events
                continue
            hits = sorted(
                ((f, w) for f, w in weighted if _finding_matches(p, f)), key=lambda fw: -fw[1]
            )
            ruled_out |= p.required and not hits
            if p.absent:
                # A satisfied "absent" pattern only supports the playbook's positive evidence;
                # a violated one contradicts it.
                if hits:
                    score -= p.weight * hits[0][1]
                else:
                    evidence.append(f"no {p.kind} finding{' for ' + p.check if p.check else ''}")
            elif hits:
                score += p.weight * hits[0][1]
                positive = True
                evidence.append(_describe_finding(hits[0][0]))
        for kind in pb.symptoms.finding_kinds:
            total += KIND_WEIGHT
            score += KIND_WEIGHT * kind_strength.get(kind, 0.0)
        score -= UNEXPLAINED_PENALTY * sum(
            kind_strength[kind] for kind in _unexplained_upstream(pb, kind_strength)
        )
        if positive and not ruled_out and score > 0 and total > 0:
            ranked.append((pb, round(score, 4), round(min(score / total, 1.0), 3), evidence))
    ranked.sort(key=lambda r: (-r[1], r[0].id))
    return ranked


def _weighted_findings(
    findings: Sequence[Finding], changes: Sequence[Change]
) -> list[tuple[Finding, float]]:
    """Each finding with how much it counts: 1 at onset, ``LATE_WEIGHT`` later or when it only
    stands in for a signal change of a kind no detector flagged (changes that began before the
    onset's margin are left out)."""
    windows = [f.window for f in findings if f.window is not None]
    onset = min(windows) if windows else None
    out = [
        (
            f,
            LATE_WEIGHT
            if onset is not None and f.window is not None and f.window > onset + ONSET_WINDOWS
            else 1.0,
        )
        for f in findings
    ]
    flagged = {f.kind for f in findings}
    for c in changes:
        if onset is not None and c.window < onset - ONSET_WINDOWS:
            continue  # a change well before the incident began belongs to an earlier story
        pseudo = _pseudo_finding(c)
        if pseudo is not None and pseudo.kind not in flagged:
            out.append((pseudo, LATE_WEIGHT))
    return out


def _unexplained_upstream(
    pb: Playbook, kind_strength: dict[FindingKind, float]
) -> list[FindingKind]:
    """Kinds seen in the incident that ``pb`` does not list and that sit upstream (earlier in
    :data:`CAUSAL_ORDER`) of every kind it lists. A kind its ``absent`` patterns name is already
    weighed by them."""
    patterns = pb.symptoms.signal_patterns
    listed = set(pb.symptoms.finding_kinds) | {
        p.kind for p in patterns if p.kind != "event" and not p.absent
    }
    considered = listed | {p.kind for p in patterns if p.absent}
    ranks = [CAUSAL_ORDER[k] for k in listed if k in CAUSAL_ORDER]
    if not ranks:
        return []
    most_upstream = min(ranks)
    return [
        k
        for k in kind_strength
        if k not in considered and CAUSAL_ORDER.get(k, most_upstream) < most_upstream
    ]


def _pseudo_finding(c: Change) -> Finding | None:
    kind = {
        "performance": FindingKind.CONCEPT_DRIFT,
        "latency": FindingKind.LATENCY,
        "error": FindingKind.ERROR_RATE,
        "feature_drift": FindingKind.DATA_DRIFT,
        "feature_quality": FindingKind.DATA_QUALITY,
    }.get(c.signal_class)
    if kind is None:
        return None
    stat, _ = split_signal(c.signal)
    return Finding(
        kind=kind,
        detector="signal_change",
        statistic=stat,
        features=[c.feature] if c.feature else [],
        score=round(c.after, 6),
        threshold=round(c.before, 6) if c.before else 1e-9,
        window=c.window,
        message=f"{c.signal} changed",
        evidence={"signal": c.signal},
    )


def _points(v: float) -> float:
    return v * 100 if abs(v) <= 1 else v


def incident_facts(
    findings: Sequence[Finding], changes: Sequence[Change], near_events: Sequence[dict[str, Any]]
) -> Facts:
    """The severity facts of an incident, from measured changes and findings' evidence."""
    facts = Facts()
    for c in changes:
        if c.signal_class == "performance" and split_signal(c.signal)[0] not in (
            "rmse",
            "mae",
            "mape",
            "log_loss",
            "brier",
        ):
            drop = round(_points(c.before) - _points(c.worst), 3)
            if facts.metric_drop_points is None or drop > facts.metric_drop_points:
                facts.metric, facts.metric_before, facts.metric_after = c.signal, c.before, c.worst
                facts.metric_drop_points = drop
        elif c.signal_class == "latency" and c.before > 0:
            facts.latency_before_ms, facts.latency_after_ms = c.before, c.worst
            facts.latency_ratio = round(c.worst / c.before, 3)
        elif c.signal_class == "error":
            facts.error_rate = max(facts.error_rate or 0.0, c.worst)
        elif c.signal_class == "feature_quality" and c.signal.startswith("null_rate"):
            facts.null_rate = max(facts.null_rate or 0.0, c.worst)
    for f in findings:
        ev = f.evidence or {}
        share = ev.get("traffic_share", ev.get("share"))
        if isinstance(share, int | float):
            facts.traffic_share = max(facts.traffic_share or 0.0, float(share))
        if ev.get("all_affected") or ev.get("unique_predictions") == 1:
            facts.all_affected = True
        if f.kind == FindingKind.ERROR_RATE and f.statistic == "error_rate":
            facts.error_rate = max(facts.error_rate or 0.0, f.score)
        if f.kind == FindingKind.DATA_QUALITY and "null" in f.statistic:
            facts.null_rate = max(facts.null_rate or 0.0, f.score)
    if facts.null_rate is not None and facts.null_rate >= 0.99:
        facts.all_affected = True
    facts.after_deploy = any("deploy" in _event_type(e) for e in near_events)
    facts.features = sorted({x for f in findings for x in f.features})
    times = [t for c in changes if (t := _parse_time(c.time)) is not None]
    if len(times) >= 2:
        facts.duration_minutes = round((max(times) - min(times)).total_seconds() / 60, 1)
    return facts


def _parse_time(t: str | None) -> datetime | None:
    if not t:
        return None
    try:
        return datetime.fromisoformat(t)
    except ValueError:
        return None


def _stat_label(signal: str) -> str:
    stat, feature = split_signal(signal)
    label = _STAT_NAMES.get(stat, stat.replace("_", " "))
    return f"{feature}'s {label}" if feature else label


def fmt_value(signal: str, v: float) -> str:
    stat, _ = split_signal(signal)
    if "rate" in stat:
        pct = v * 100
        return f"{pct:.1f}%" if 0 < abs(pct) < 10 else f"{pct:.0f}%"
    if "latency" in stat:
        return f"{v:.0f} ms" if "ms" in stat or v > 20 else f"{v:.3g} s"
    return f"{v:.2f}" if abs(v) < 100 else f"{v:.4g}"


def _when(c: Change) -> str:
    if c.time:
        t = _parse_time(c.time)
        return f"at {t.strftime('%H:%M') if t else c.time} (window {c.window})"
    return f"in window {c.window}"


def _windows_phrase(n: int) -> str:
    word = _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)
    return f"{word} window{'s' if n != 1 else ''}"


def _sentence(text: str, change: Change) -> str:
    # Feature names keep their exact spelling; only a plain metric name is capitalised.
    return (text if change.feature else text[0].upper() + text[1:]) + "."


def explain(
    changes: Sequence[Change],
    matches: Sequence[IncidentMatch],
    severity: Severity,
    reasons: Sequence[str],
    culprits: Sequence[Culprit],
    segments: Sequence[Segment],
    events: Sequence[dict[str, Any]],
) -> str:
    """Plain-English account with the numbers: first input change, then its consequence."""
    parts: list[str] = []
    causes = [c for c in changes if c.signal_class in ("feature_quality", "feature_drift")]
    effects = [c for c in changes if c.signal_class in ("performance", "latency", "error")]
    deploys = [e for e in events if _event_type(e) in ("deploy", "config")]
    if deploys:
        e = deploys[0]
        where = f" in window {e['window']}" if isinstance(e.get("window"), int) else ""
        parts.append(
            f"A {_event_type(e)} happened{where}"
            f"{': ' + str(e['description']) if e.get('description') else ''}."
        )
    lead = causes[0] if causes else None
    effect = effects[0] if effects else None
    if lead is not None:
        s = (
            f"{_stat_label(lead.signal)} went from {fmt_value(lead.signal, lead.before)} to "
            f"{fmt_value(lead.signal, lead.worst)} {_when(lead)}"
        )
        if effect is not None:
            gap = effect.window - lead.window
            verb = "fell" if effect.signal_class == "performance" else "rose"
            rel = (
                f"{_windows_phrase(gap)} before"
                if gap > 0
                else "in the same window as"
                if gap == 0
                else f"{_windows_phrase(-gap)} after"
            )
            s += (
                f", {rel} {_stat_label(effect.signal)} {verb} from "
                f"{fmt_value(effect.signal, effect.before)} to "
                f"{fmt_value(effect.signal, effect.worst)}"
            )
        parts.append(_sentence(s, lead))
    elif effect is not None:
        verb = "fell" if effect.signal_class == "performance" else "rose"
        s = (
            f"{_stat_label(effect.signal)} {verb} from {fmt_value(effect.signal, effect.before)} "
            f"to {fmt_value(effect.signal, effect.worst)} {_when(effect)}"
        )
        parts.append(_sentence(s, effect))
    if matches:
        m = matches[0]
        alt = f" (next: '{matches[1].title}')" if len(matches) > 1 else ""
        parts.append(f"This matches '{m.title}' ({'; '.join(m.evidence[:2])}){alt}.")
    else:
        parts.append("No playbook matches these findings; follow the generic triage checklist.")
    parts.append(f"Severity {severity.value}" + (f": {'; '.join(reasons)}." if reasons else "."))
    if culprits:
        parts.append(
            "Top culprit features: "
            + ", ".join(
                f"{c.feature} (drift {c.drift:.3g}"
                + (f", importance {c.importance:.3g})" if c.importance is not None else ")")
                for c in culprits[:3]
            )
            + "."
        )
    if segments:
        s0 = segments[0]
        what = (
            f"error {s0.reference_error:.0%} -> {s0.window_error:.0%}"
            if s0.ranked_by == "error"
            and s0.window_error is not None
            and s0.reference_error is not None
            else "its share moved most"
        )
        parts.append(
            f"Worst segment: {s0.feature} = {s0.value} ({s0.window_share:.0%} of traffic, {what})."
        )
    return " ".join(parts)


def diagnose_incident(
    findings: Sequence[Finding],
    *,
    events: Sequence[dict[str, Any]] = (),
    signals: Sequence[dict[str, Any]] = (),
    feature_importance: dict[str, float] | None = None,
    window_rows: pd.DataFrame | None = None,
    reference_rows: pd.DataFrame | None = None,
    error_column: str = "error",
    features: Sequence[str] | None = None,
    playbooks: Sequence[Playbook] | None = None,
    model: str | None = None,
    resolution: Sequence[str] = (),
    generated_at: str | None = None,
    limit: int = 3,
    agent_diagnosis: str | None = None,
    agent_severity: Severity | None = None,
) -> IncidentDiagnosis:
    """Diagnose one incident; every argument but ``findings`` is optional evidence.

    ``events``: dicts with ``type`` (``deploy``, ``config`` ...), optional ``window``, ``time``
    and ``description``. ``signals``: one flat dict per window with ``window`` (and optionally
    ``time``) plus signal values such as ``accuracy``, ``latency_p99_ms``,
    ``null_rate.FEATURE`` or ``psi.FEATURE``. ``feature_importance``: permutation importance
    from the registry. ``window_rows``/``reference_rows``: records of the incident window and
    of the reference, with an optional ``error_column``. ``resolution``: what was done, for
    the report. ``generated_at`` is written into reports as given (no clock is read here).

    For an incident the agent already diagnosed, ``agent_diagnosis`` (a row of its decision
    table) puts the playbooks that can cause it (``Playbook.explains``) first, and
    ``agent_severity`` is the severity shown: an incident's header, its report and the actions
    its severity allowed must tell one story (the playbook's own severity stays in the reasons).
    """
    events = list(events)
    windows = [f.window for f in findings if f.window is not None]
    first_finding = min(windows) if windows else None
    baseline_until = None
    if first_finding is not None and signals:
        earliest_signal = min(int(r.get("window", i)) for i, r in enumerate(signals))
        # Only use the windows before the incident as baseline when there are some.
        if first_finding > earliest_signal:
            baseline_until = first_finding
    changes = detect_changes(list(signals), baseline_until)
    ranked = match_playbooks(findings, events, playbooks, changes)
    if agent_diagnosis is not None:
        fitting = [r for r in ranked if agent_diagnosis in r[0].explains]
        ranked = fitting + [r for r in ranked if agent_diagnosis not in r[0].explains]
    near_events = _relevant_events(
        events,
        first_finding if first_finding is not None else (changes[0].window if changes else None),
    )
    facts = incident_facts(findings, changes, near_events)
    matches = []
    for pb, score, conf, evidence in ranked[:limit]:
        sev, _ = escalate(pb, facts)
        matches.append(
            IncidentMatch(
                id=pb.id,
                title=pb.title,
                score=score,
                confidence=conf,
                severity=sev,
                evidence=evidence,
            )
        )
    if ranked:
        top = ranked[0][0]
        severity, reasons = escalate(top, facts)
        reasons = [f"'{top.title}' starts at {top.severity.base.value}", *reasons]
    else:
        top, severity, reasons = None, Severity.MEDIUM, ["no playbook matched: unknown cause"]
    if agent_severity is not None and agent_severity is not severity:
        reasons = [
            f"the agent assessed the incident {agent_severity.value} (the playbook alone "
            f"says {severity.value})",
            *reasons,
        ]
        severity = agent_severity
    signal_drift: dict[str, tuple[float, str]] = {}
    for c in changes:
        if c.feature and c.signal_class in ("feature_drift", "feature_quality"):
            mag = abs(c.worst - c.before) / max(abs(c.before), 0.01)
            if c.feature not in signal_drift or mag > signal_drift[c.feature][0]:
                signal_drift[c.feature] = (mag, f"{c.signal} {c.before:.3g} -> {c.worst:.3g}")
    culprits = rank_culprits(
        findings,
        feature_importance=feature_importance,
        reference_rows=reference_rows,
        window_rows=window_rows,
        features=features,
        signal_drift=signal_drift,
    )
    segments = (
        find_segments(window_rows, reference_rows, features=features, error_column=error_column)
        if window_rows is not None
        else []
    )
    timeline = _timeline(events, changes, findings)
    explanation = explain(changes, matches, severity, reasons, culprits, segments, near_events)
    symptoms = [f.message if f.message else _describe_finding(f) for f in findings] or [
        f"{_stat_label(c.signal)} changed {_when(c)}" for c in changes
    ]
    impact = [f"severity {severity.value}: " + "; ".join(reasons), *facts.describe()]
    return IncidentDiagnosis(
        model=model,
        generated_at=generated_at,
        severity=severity,
        severity_reasons=reasons,
        matches=matches,
        culprits=culprits,
        segments=segments,
        timeline=timeline,
        explanation=explanation,
        symptoms=symptoms,
        impact=impact,
        checks=fill_checks(
            [{"title": c.title, "kind": c.kind, "run": c.run} for c in (top.checks if top else [])],
            model=model,
            feature=_lead_feature(culprits, findings, features),
        ),
        actions=[
            {"action": a.action.value, "description": a.description}
            for a in (top.actions if top else [])
        ],
        confirm=list(top.confirm) if top else [],
        resolution=list(resolution),
        facts=facts,
    )


def _lead_feature(
    culprits: Sequence[Culprit], findings: Sequence[Finding], features: Sequence[str] | None
) -> str | None:
    """The feature a check's ``FEATURE`` stands for: the leading culprit, else the first feature
    a finding names, else none (the placeholder stays). Only the model's own input features
    count: a finding on the prediction's score names ``score``, which no feature check fits."""
    named = [c.feature for c in culprits]
    named += [f for finding in findings for f in finding.features]
    return next((f for f in named if features is None or f in features), None)


def _timeline(
    events: Sequence[dict[str, Any]], changes: Sequence[Change], findings: Sequence[Finding]
) -> list[TimelineEntry]:
    entries: list[tuple[int, int, TimelineEntry]] = []
    far = 10**9
    for e in events:
        w = e.get("window") if isinstance(e.get("window"), int) else None
        t = e.get("time")
        entries.append(
            (
                far if w is None else w,
                0,
                TimelineEntry(
                    window=w,
                    time=None if t is None else str(t),
                    kind=_event_type(e) or "event",
                    subject=str(e.get("subject", e.get("version", ""))),
                    description=str(e.get("description", e.get("message", _event_type(e)))),
                ),
            )
        )
    firsts = {
        "feature_drift": "first drifting feature",
        "feature_quality": "first data-quality change",
        "performance": "first performance drop",
        "latency": "first latency rise",
        "error": "first error rise",
    }
    seen: set[str] = set()
    for c in changes:
        if c.signal_class in firsts and c.signal_class not in seen:
            seen.add(c.signal_class)
            verb = "fell" if c.signal_class == "performance" else "rose"
            entries.append(
                (
                    c.window,
                    1,
                    TimelineEntry(
                        window=c.window,
                        time=c.time,
                        kind=firsts[c.signal_class],
                        subject=c.signal,
                        description=f"{_stat_label(c.signal)} {verb} from "
                        f"{fmt_value(c.signal, c.before)} to {fmt_value(c.signal, c.after)}",
                    ),
                )
            )
    for f in sorted(findings, key=lambda f: (f.window if f.window is not None else far, f.kind)):
        entries.append(
            (
                f.window if f.window is not None else far,
                2,
                TimelineEntry(
                    window=f.window,
                    kind=f"finding: {f.kind.value}",
                    subject=", ".join(f.features),
                    description=f.message or _describe_finding(f),
                ),
            )
        )
    entries.sort(key=lambda x: (x[0], x[1], x[2].kind, x[2].subject, x[2].description))
    return [e for _, _, e in entries]
