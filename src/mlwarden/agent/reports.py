"""An incident as a whole, for the dashboard, the CLI and reports.

Everything the incident page shows, gathered from the agent's tables and the store, and the
incident's diagnosis computed by :func:`mlwarden.diagnose.incident.diagnose_incident` from the
same evidence the agent saw (findings, signals around the incident, deploy/config events,
feature importance, recent records against the reference sample)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from mlwarden.agent.monitor_source import reference_frame
from mlwarden.clock import as_utc
from mlwarden.diagnose.incident import IncidentDiagnosis, diagnose_incident
from mlwarden.domain import Finding, ModelSpec, Severity, Task
from mlwarden.monitor.window import records_frame
from mlwarden.store.approvals import Approvals
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store
from mlwarden.store.windows import WindowRepo

__all__ = [
    "diagnose_stored_incident",
    "incident_context",
    "incident_findings",
    "incident_signals",
]

MAX_ROWS = 5_000


def incident_findings(
    store: Store, incident: Mapping[str, Any], model_id: int
) -> list[dict[str, Any]]:
    """Findings tied to the incident, or stored for its model inside its window range."""
    # every scope's findings of the incident's windows: a playbook reads its cause from
    # their combination (a unit change is a range break *and* a drift of the same feature)
    return WindowRepo(store).incident_findings(
        model_id, incident["id"], incident["first_window"], incident["last_window"]
    )


def _as_finding(row: dict[str, Any]) -> Finding:
    return Finding(
        kind=row["kind"],
        detector=row["detector"],
        features=row["features"] or [],
        statistic=row["statistic"],
        score=row["score"],
        threshold=row["threshold"],
        p_value=row["p_value"],
        window=row["window"],
        message=row["message"],
        evidence=row["evidence"] or {},
    )


def _absolute_errors(labels: Sequence[Any], predictions: Sequence[Any]) -> np.ndarray:
    """|label - prediction| per row; NaN without a label, an answer, or a number."""
    errors = np.full(len(labels), np.nan)
    for i, (label, prediction) in enumerate(zip(labels, predictions, strict=True)):
        if label is not None and prediction is not None:
            with contextlib.suppress(TypeError, ValueError):  # a label that is no number
                errors[i] = abs(float(label) - float(prediction))
    return errors


def answers_frame(
    records: list[dict[str, Any]], task: Task, typical_error: float | None = None
) -> pd.DataFrame:
    """Records as the monitor's table (``monitor.window.records_frame``) whose ``error`` is 1
    for a wrong answer, 0 for a right one, and missing without a label or an answer (it is
    the answer's error, not the request's).

    A class is wrong when it is not the label. A regression's answer is never exactly its
    label, so it is wrong when it misses by more than ``typical_error``, the live version's
    mean absolute error on its own reference sample; without one (a remote version, or no
    sample), by more than the median miss of these records.
    """
    frame = records_frame(records)
    # as stored: the frame's columns may have turned a label 1 into 1.0
    labels = [record.get("label") for record in records]
    predictions = [record.get("prediction") for record in records]
    if task is Task.REGRESSION:
        misses = _absolute_errors(labels, predictions)
        if typical_error is None and not np.isnan(misses).all():
            typical_error = float(np.nanmedian(misses))
        errors = np.where(np.isnan(misses), np.nan, misses > (typical_error or 0.0))
    else:
        errors = np.array(
            [
                np.nan if label is None or prediction is None else str(label) != str(prediction)
                for label, prediction in zip(labels, predictions, strict=True)
            ],
            dtype=float,
        )
    frame["error"] = errors.astype(float)
    return frame


def _reference_rows(
    store: Store, spec: ModelSpec, version: int
) -> tuple[pd.DataFrame | None, float | None]:
    """The version's reference sample as rows for segments and culprits, and for a regression
    its typical error: the mean absolute error of the version's own answers to the sample,
    with each row's ``error`` judged by it as the incident's records are."""
    if spec.task is not Task.REGRESSION:
        sample = store.reference_sample(spec.name, version)
        return (pd.DataFrame(sample) if sample else None), None
    scored = reference_frame(store, spec, version)
    if scored is None or "prediction" not in scored or "label" not in scored:
        sample = store.reference_sample(spec.name, version)
        return (pd.DataFrame(sample) if sample else None), None
    misses = _absolute_errors(scored["label"].tolist(), scored["prediction"].tolist())
    if np.isnan(misses).all():
        return scored, None
    typical = float(np.nanmean(misses))
    scored["error"] = np.where(np.isnan(misses), np.nan, misses > typical).astype(float)
    return scored, typical


def diagnose_stored_incident(
    store: Store, incident: Mapping[str, Any], findings: list[dict[str, Any]], model_id: int
) -> IncidentDiagnosis:
    """The diagnosis of a stored incident, from the evidence in the store."""
    model = incident["model"]
    signals = incident_signals(store, model_id, incident["first_window"], incident["last_window"])
    # only what changed around the failure is a suspect: from the end of the second window
    # before the incident to its opening (a deploy weeks earlier, or the agent's own remedies
    # afterwards, would otherwise match "bad deploy")
    ends = {s["window"]: datetime.fromisoformat(s["time"]) for s in signals}
    since = ends.get(incident["first_window"] - 2)
    until = as_utc(incident["opened_at"])
    events = [
        {
            "type": e["kind"],
            "time": e["ts"].isoformat() if isinstance(e["ts"], datetime) else e["ts"],
            "description": f"{e['kind']} by {e['actor']}: {e['details'].get('reason', '')}".strip(),
        }
        for e in store.events(model, limit=50)
        if (since is None or as_utc(e["ts"]) >= since)
        and as_utc(e["ts"]) <= until
        and not _first_deployment(e)
    ]
    spec = store.get_model(model)
    features = [f.name for f in spec.features]
    deployment = store.get_deployment(model)
    importance = None
    reference_rows, typical_error = None, None
    if deployment is not None and deployment.live_version is not None:
        version = store.get_version(model, deployment.live_version)
        importance = getattr(version, "feature_importance", None)
        reference_rows, typical_error = _reference_rows(store, spec, deployment.live_version)
    times = [s["time"] for s in signals if s["window"] >= incident["first_window"]]
    since = datetime.fromisoformat(times[0]) if times else None
    # the incident's own windows only: without an end an open incident read every record
    # since it began, and its diagnosis changed with each new record rather than with the
    # incident (so it could not be kept between page views)
    last_end = ends.get(incident["last_window"])
    window_rows = None
    recent = store.fetch_records(
        model,
        since=since,
        until=None if last_end is None else last_end + timedelta(microseconds=1),
        limit=MAX_ROWS,
        newest_first=True,
        answers_only=True,
    )
    if recent:
        window_rows = answers_frame(recent, spec.task, typical_error)
    resolution = [
        f"{a['kind']} ({a['state']}) by {a['actor']}" for a in incident.get("actions", [])
    ]
    return diagnose_incident(
        [_as_finding(f) for f in findings],
        events=events,
        signals=signals,
        feature_importance=importance,
        window_rows=window_rows,
        reference_rows=reference_rows,
        features=features,
        model=model,
        resolution=resolution,
        generated_at=as_utc(incident["updated_at"]).isoformat(),
        agent_diagnosis=incident.get("diagnosis"),
        agent_severity=_severity(incident.get("severity")),
    )


def _severity(value: str | None) -> Severity | None:
    try:
        return Severity(value) if value else None
    except ValueError:
        return None


def _first_deployment(event: dict[str, Any]) -> bool:
    """A model's first deployment replaced nothing, so it cannot be a regression to roll back."""
    details = event.get("details") or {}
    return event["kind"] == "deploy" and "previous" in details and details["previous"] is None


DiagnoseIncident = Callable[
    [Store, Mapping[str, Any], list[dict[str, Any]], int], IncidentDiagnosis
]


def incident_context(
    store: Store, incident_id: int, diagnose: DiagnoseIncident | None = None
) -> dict[str, Any]:
    """The incident with its decisions, actions, verifications, findings, pending approval and
    diagnosis (``diagnosis_error`` says why a diagnosis could not be made).

    ``diagnose`` replaces :func:`diagnose_stored_incident` (the dashboard passes one that keeps
    the diagnoses of closed incidents)."""
    repo = AgentRepo(store)
    incident = repo.get_incident(incident_id)
    model_id = store.model_id(incident["model"])
    findings = incident_findings(store, incident, model_id)
    approvals = [
        a for a in Approvals(store).list(model=incident["model"]) if a["incident_id"] == incident_id
    ]
    context: dict[str, Any] = {
        "incident": incident,
        "findings": findings,
        "approvals": approvals,
        "diagnosis": None,
        "diagnosis_error": None,
    }
    try:
        context["diagnosis"] = (diagnose or diagnose_stored_incident)(
            store, incident, findings, model_id
        )
    except Exception as exc:  # the page must still show the facts when diagnosis cannot run
        context["diagnosis_error"] = f"{type(exc).__name__}: {exc}"
    return context


SIGNAL_MARGIN = 20  # windows of signals read before and after an incident's own


def incident_signals(
    store: Store, model_id: int, first: int, last: int, margin: int = SIGNAL_MARGIN
) -> list[dict[str, Any]]:
    """One flat dict per window (``window``, ``time`` and every signal) around an incident: the
    ``signals`` argument of :func:`mlwarden.diagnose.incident.diagnose_incident`."""
    points = WindowRepo(store).signal_rows_between(model_id, first - margin, last + margin)
    flat: dict[int, dict[str, Any]] = {}
    for p in points:
        row = flat.setdefault(p.window, {"window": p.window, "time": p.ts.isoformat()})
        if p.name != "window.closed" and p.value is not None and math.isfinite(p.value):
            row[p.name] = p.value
    return [flat[w] for w in sorted(flat)]
