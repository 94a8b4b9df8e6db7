"""Answers to on-call questions ("why is demo failing?", "show open incidents", "is titanic
drifting?", "show the drift report", "what did the agent do today?"), read from what the agent
stored: incidents, findings and the action journal. No language model: the same store gives
the same sentences, and each answer's ``result`` holds the numbers the sentences cite.

>>> from mlwarden.store import Store
>>> answer("incidents", Store("sqlite://"), None)[0]
'no open incident'
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, time
from typing import Any

from mlwarden.clock import utcnow
from mlwarden.domain import FindingKind
from mlwarden.errors import InvalidInput
from mlwarden.store import Store
from mlwarden.store.incidents import OPEN_STATES, AgentRepo
from mlwarden.store.journal import ActionJournal

DRIFT_KINDS = {FindingKind.DATA_DRIFT, FindingKind.PREDICTION_DRIFT, FindingKind.CONCEPT_DRIFT}
SHOWN = 5  # findings or features named in a sentence; the result holds them all
REPORT_FINDINGS = 2_000  # the newest drift findings a drift report reads


def answer(
    question: str, store: Store, model: str | None, now: datetime | None = None
) -> tuple[str, dict[str, Any]]:
    """The plain-sentence answer to ``question`` about ``model`` (None: every model), and the
    same facts as JSON."""
    repo = AgentRepo(store)
    if question == "failing":
        return _failing(repo, _required(model, question))
    if question == "incidents":
        return _incidents(repo, model)
    if question == "drifting":
        return _drifting(repo, _required(model, question))
    if question == "drift_report":
        return _drift_report(repo, _required(model, question))
    if question == "activity":
        return _activity(store, repo, model, now or utcnow())
    raise InvalidInput(f"unknown on-call question {question!r}", question=question)


def _required(model: str | None, question: str) -> str:
    if model is None:
        raise InvalidInput(f"the {question} question needs a model", question=question)
    return model


def _incident_row(incident: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": incident["id"],
        "model": incident["model"],
        "state": incident["state"],
        "severity": incident["severity"],
        "diagnosis": incident["diagnosis"],
        "kinds": list(incident.get("kinds") or []),
        "features": list(incident.get("features") or []),
        "first_window": incident["first_window"],
        "last_window": incident["last_window"],
        "opened_at": incident["opened_at"].isoformat(),
        "summary": incident["summary"],
    }


def _incident_sentence(row: dict[str, Any]) -> str:
    diagnosis = f", diagnosis {row['diagnosis']}" if row["diagnosis"] else ""
    windows = (
        f"window {row['first_window']}"
        if row["first_window"] == row["last_window"]
        else f"windows {row['first_window']}-{row['last_window']}"
    )
    return (
        f"incident #{row['id']} on {row['model']} ({row['state']}, severity {row['severity']}"
        f"{diagnosis}, {windows}): {row['summary']}"
    )


def _finding_row(finding: dict[str, Any]) -> dict[str, Any]:
    return {
        "window": finding["window"],
        "kind": finding["kind"],
        "features": list(finding["features"] or []),
        "statistic": finding["statistic"],
        "score": finding["score"],
        "threshold": finding["threshold"],
        "message": finding["message"],
    }


def _finding_sentence(row: dict[str, Any]) -> str:
    on = f" on {', '.join(row['features'])}" if row["features"] else ""
    return (
        f"{row['kind']}{on} ({row['statistic']} {row['score']:.3g} "
        f"> threshold {row['threshold']:.3g})"
    )


def _last_window_findings(repo: AgentRepo, model: str) -> tuple[int | None, list[dict[str, Any]]]:
    last = repo.last_window(model)
    if last is None:
        return None, []
    rows = [_finding_row(f) for f in repo.findings(model) if f["window"] == last]
    return last, rows


def _failing(repo: AgentRepo, model: str) -> tuple[str, dict[str, Any]]:
    incidents = [_incident_row(i) for i in repo.open_incidents(model)]
    last, findings = _last_window_findings(repo, model)
    result = {"model": model, "incidents": incidents, "window": last, "findings": findings}
    if last is None and not incidents:
        return f"{model} has no monitored window yet, so nothing is known to fail", result
    lines: list[str] = []
    if incidents:
        lines.append(f"{model} has {_count(len(incidents), 'open incident')}:")
        lines += [f"  - {_incident_sentence(row)}" for row in incidents]
    else:
        lines.append(f"{model} has no open incident.")
    if findings:
        lines.append(f"Its last window ({last}) has {_count(len(findings), 'finding')}:")
        lines += [f"  - {_finding_sentence(row)}" for row in findings[:SHOWN]]
        if len(findings) > SHOWN:
            lines.append(f"  - and {len(findings) - SHOWN} more")
    elif last is not None:
        lines.append(f"Its last window ({last}) has no finding.")
    return "\n".join(lines), result


def _incidents(repo: AgentRepo, model: str | None) -> tuple[str, dict[str, Any]]:
    rows = [
        _incident_row(i)
        for i in reversed(repo.list_incidents(model, limit=1_000))
        if i["state"] in OPEN_STATES
    ]
    result = {"model": model, "states": list(OPEN_STATES), "incidents": rows}
    of = f" on {model}" if model else ""
    if not rows:
        return f"no open incident{of}", result
    lines = [f"{_count(len(rows), 'open incident')}{of}:"]
    lines += [f"  - {_incident_sentence(row)}" for row in rows]
    return "\n".join(lines), result


def _drifting(repo: AgentRepo, model: str) -> tuple[str, dict[str, Any]]:
    last, findings = _last_window_findings(repo, model)
    drift = [f for f in findings if f["kind"] in DRIFT_KINDS]
    features = sorted({name for f in drift for name in f["features"]})
    result = {
        "model": model,
        "window": last,
        "drifting": bool(drift),
        "features": features,
        "findings": drift,
    }
    if last is None:
        return f"{model} has no monitored window yet: no drift is known", result
    if not drift:
        return f"no: {model}'s last window ({last}) has no drift finding", result
    lines = [
        f"yes: {model}'s last window ({last}) has {_count(len(drift), 'drift finding')}"
        + (f" on {_count(len(features), 'feature')}" if features else "")
        + ":"
    ]
    lines += [f"  - {_finding_sentence(row)}" for row in drift[:SHOWN]]
    if len(drift) > SHOWN:
        lines.append(f"  - and {len(drift) - SHOWN} more")
    return "\n".join(lines), result


def _drift_report(repo: AgentRepo, model: str) -> tuple[str, dict[str, Any]]:
    last = repo.last_window(model)
    findings = [
        _finding_row(f)
        for f in repo.findings(model, limit=REPORT_FINDINGS)
        if f["kind"] in DRIFT_KINDS
    ]
    per: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in findings:
        for name in row["features"] or ["(prediction)"]:
            per[name].append(row)
    features = [
        {
            "feature": name,
            "windows": len({r["window"] for r in rows}),
            "first_window": min(r["window"] for r in rows),
            "last_window": max(r["window"] for r in rows),
            "max_score": max(r["score"] for r in rows),
            "statistic": max(rows, key=lambda r: r["score"])["statistic"],
        }
        for name, rows in per.items()
    ]
    # the most persistent drift first, then the strongest; the name breaks ties
    features.sort(key=lambda f: (-f["windows"], -f["max_score"], f["feature"]))
    result = {"model": model, "last_window": last, "features": features}
    if last is None:
        return f"{model} has no monitored window yet: no drift report", result
    if not features:
        return f"drift report for {model}: no drift finding up to window {last}", result
    drifted = _count(len(features), "feature")
    lines = [f"drift report for {model} up to window {last}: {drifted} drifted"]
    for f in features:
        windows = _count(f["windows"], "window")
        lines.append(
            f"  - {f['feature']}: {windows} (windows {f['first_window']}-{f['last_window']}), "
            f"highest {f['statistic']} {f['max_score']:.3g}"
        )
    return "\n".join(lines), result


def _activity(
    store: Store, repo: AgentRepo, model: str | None, now: datetime
) -> tuple[str, dict[str, Any]]:
    since = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)  # midnight UTC
    actions = [
        {
            "id": a["id"],
            "model": a["model"],
            "kind": a["kind"],
            "state": a["state"],
            "actor": a["actor"],
            "incident_id": a["incident_id"],
            "created_at": a["created_at"].isoformat(),
            "error": a["error"],
        }
        for a in reversed(ActionJournal(store).list(model=model, limit=1_000))
        if a["created_at"] >= since
    ]
    opened = [
        _incident_row(i)
        for i in reversed(repo.list_incidents(model, limit=1_000))
        if i["opened_at"] >= since
    ]
    result = {"model": model, "since": since.isoformat(), "actions": actions, "incidents": opened}
    of = f" on {model}" if model else ""
    if not actions and not opened:
        return f"the agent took no action and opened no incident{of} today", result
    lines = [
        f"today{of} the agent opened {_count(len(opened), 'incident')} and took "
        f"{_count(len(actions), 'action')}:"
    ]
    lines += [f"  - opened {_incident_sentence(row)}" for row in opened]
    for a in actions:
        about = f" for incident #{a['incident_id']}" if a["incident_id"] else ""
        error = f" ({a['error']})" if a["error"] else ""
        lines.append(
            f"  - action #{a['id']}: {a['kind']} on {a['model']}{about}, "
            f"{a['state']}{error} at {a['created_at'][11:19]} UTC"
        )
    return "\n".join(lines), result


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
