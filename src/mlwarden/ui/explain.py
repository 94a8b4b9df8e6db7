"""The agent's decisions said for a person: a few sentences, and the numbers in a table.

The agent stores each decision's fields (action, diagnosis, severity, confidence, the
alternatives it refused, the evidence it weighed) and a one-line ``rationale`` made of the
sentences of each step of ``agent.decide`` joined by semicolons: exact, but 300-600 characters
of ``rule: 3 of 5; effect ratio 20.3 >= 10``. Here the fields give the sentences, and the
numbers the rationale's steps state in their fixed wording (``agent.incidents`` and
``agent.decide``) become table rows. A step this module does not know is kept as written, so a
new note in the agent is shown rather than lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mlwarden.agent.remedies.registry import registered

__all__ = ["DecisionView", "explain_decision", "readable_timeline"]

# what each action does, as the object of "chose to …" / "recommends to …": each remedy's own
ACTION_PHRASES = {kind.value: remedy.phrase for kind, remedy in registered().items()}
DIAGNOSIS_LABELS = {
    "noise": "noise",
    "data_quality": "a data-quality problem",
    "collapsed_predictions": "collapsed predictions",
    "regression_after_deploy": "a regression after a deployment",
    "latency_or_errors": "latency or errors in serving",
    "covariate_drift_performance_drop": "input drift that hurt performance",
    "concept_drift": "concept drift",
    "covariate_drift_stable": "input drift without a performance drop",
    "late_data": "late data",
}

_PERSISTENCE = re.compile(
    r"(?P<kind>[a-z_]+): (?P<flagged>\d+) of the last (?P<seen>\d+) windows flagged "
    r"\(rule: (?P<k>\d+) of (?P<n>\d+)\)"
)
_DIAGNOSIS = re.compile(r"diagnosis (?P<diagnosis>[a-z_]+): (?P<why>[^;]+)")
_SEVERITY = re.compile(r"severity (?P<level>[a-z]+): (?P<why>[^;]+)")
_HIT = re.compile(r"(?P<name>[a-z ]+) (?P<value>[-0-9.e+]+) >= (?P<limit>[-0-9.e+]+)")
_CONFIDENCE = re.compile(r"confidence (?P<value>[0-9.]+)")
_EVIDENCE = re.compile(
    r"evidence: .*?(?=; advisory mode|; [a-z]+ at [a-z]+ severity needs approval|$)"
)
_APPROVAL = re.compile(r"(advisory mode: [^;]+|[a-z]+ at [a-z]+ severity needs approval)")


@dataclass
class DecisionView:
    """One decision for the page: ``summary`` (one sentence), ``reasons`` (sentences),
    ``numbers`` (label, value, what it is compared with) and ``options`` (the remedies the
    agent scored on the same labelled records, when it weighed any)."""

    summary: str
    reasons: list[str] = field(default_factory=list)
    numbers: list[tuple[str, str, str]] = field(default_factory=list)
    options: list[dict[str, Any]] = field(default_factory=list)
    options_metric: str = ""


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].upper() + text[1:] + "." if text else ""


def _kind(name: str) -> str:
    return name.replace("_", " ")


def _summary(decision: dict[str, Any]) -> str:
    action = str(decision.get("action") or "none")
    rationale = str(decision.get("rationale") or "")
    if rationale.startswith("Noise"):
        return (
            "No action: the findings did not persist, so the agent treats them as noise and "
            "keeps watching."
        )
    if rationale.startswith("Waiting:"):
        busy = rationale.removeprefix("Waiting:").split(". ", 1)[0].strip()
        return f"No action yet: {busy}."
    phrase = ACTION_PHRASES.get(action, action)
    if decision.get("needs_approval"):
        return f"The agent wants to {phrase}, and waits for an operator's approval."
    if action == "none":
        return "The agent took no action."
    if action == "alert":
        return "The agent alerted the people on call and changed nothing else."
    also = " and to alert the people on call" if decision.get("notify") else ""
    return f"The agent chose to {phrase}{also}."


def explain_decision(decision: dict[str, Any]) -> DecisionView:
    """``decision`` (a stored decision row, as ``AgentRepo`` returns it) for a person."""
    view = DecisionView(summary=_summary(decision))
    rationale = str(decision.get("rationale") or "")
    body = rationale.split(". ", 1)[1] if ". " in rationale else ""
    if rationale.startswith("Noise"):
        body = rationale.removeprefix("Noise, not a persistent failure:").removesuffix(
            " Monitoring more windows."
        )
    for alternative in decision.get("alternatives") or []:
        body = body.replace(f" Not {alternative['action']}: {alternative['reason']}.", "")
    body = body.strip().rstrip(".")

    found: re.Match[str] | None
    for found in _PERSISTENCE.finditer(body):
        view.numbers.append(
            (
                f"windows with {_kind(found['kind'])} findings",
                f"{found['flagged']} of the last {found['seen']}",
                f"persistent from {found['k']} of {found['n']}",
            )
        )
    body = _PERSISTENCE.sub("", body)
    if (found := _DIAGNOSIS.search(body)) is not None:
        label = DIAGNOSIS_LABELS.get(found["diagnosis"], _kind(found["diagnosis"]))
        view.reasons.append(_sentence(f"The diagnosis is {label}: {found['why']}"))
        body = body.replace(found[0], "")
    if (found := _SEVERITY.search(body)) is not None:
        hits = list(_HIT.finditer(found["why"]))
        for hit in hits:
            view.numbers.append(
                (hit["name"].strip(), hit["value"], f"{found['level']} from {hit['limit']}")
            )
        why = (
            f"{', '.join(h['name'].strip() for h in hits)} past the {found['level']} threshold"
            if hits
            else found["why"]
        )
        view.reasons.append(_sentence(f"It is {found['level']}: {why}"))
        body = body.replace(found[0], "")
    if (found := _CONFIDENCE.search(body)) is not None:
        view.numbers.append(("confidence", found["value"], "0 to 1"))
        body = body.replace(found[0], "")
    evidence = (decision.get("params") or {}).get("evidence") or {}
    scores = evidence.get("scores") if isinstance(evidence, dict) else None
    if (found := _EVIDENCE.search(body)) is not None:
        if scores:
            view.reasons.append(
                _sentence(
                    "Before acting, the agent scored each remedy on the same labelled records "
                    "(table below)"
                )
            )
        else:
            view.reasons.append(_sentence(found[0].removeprefix("evidence: ")))
        body = body.replace(found[0], "")
    for found in _APPROVAL.finditer(body):
        needs = re.fullmatch(r"([a-z]+) at ([a-z]+) severity needs approval", found[0])
        view.reasons.append(
            _sentence(
                f"The policy asks a person to approve a {needs[1]} at {needs[2]} severity"
                if needs
                else "The agent runs in advisory mode: it recommends, and an operator approves"
            )
        )
    body = _APPROVAL.sub("", body)
    for rest in body.split("; "):  # a step this module does not know, as the agent wrote it
        if rest.strip(" ;,."):
            view.reasons.append(_sentence(rest.strip(" ;,")))
    for alternative in decision.get("alternatives") or []:
        view.reasons.append(
            _sentence(
                f"Considered and not chosen: to "
                f"{ACTION_PHRASES.get(alternative['action'], alternative['action'])} "
                f"({alternative['reason']})"
            )
        )
    if scores:
        chosen = evidence.get("chosen")
        view.options_metric = str(scores[0].get("metric") or "")
        view.options = [
            {
                "option": s.get("option"),
                "version": s.get("version"),
                "value": s.get("value"),
                "labelled": s.get("labelled"),
                "note": s.get("note") or "",
                "chosen": s.get("option") == chosen,
            }
            for s in scores
        ]
    return view


def readable_timeline(
    timeline: list[dict[str, Any]], decisions: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``timeline`` with each decision's rationale replaced by its one-sentence summary: the
    full explanation is said once, in the page's decision section."""
    by_id = {int(d["id"]): d for d in decisions if d.get("id") is not None}
    by_text = {str(d.get("rationale")): d for d in decisions if d.get("rationale")}
    out = []
    for entry in timeline:
        text = str(entry.get("text") or "")
        found = re.match(r"#(\d+): ", text)
        decision = by_id.get(int(found[1])) if found else by_text.get(text)
        if decision is not None and text.endswith(str(decision.get("rationale"))):
            entry = {**entry, "text": _summary(decision)}
        out.append(entry)
    return out
