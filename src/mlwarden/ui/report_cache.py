"""Incident diagnoses kept in memory so their pages and reports are not worked out again at
every view.

Diagnosing an incident reads its windows' signals and records and runs the playbooks (a few
hundred milliseconds on the demo, seconds on a long incident). What it reads is bounded by the
incident: its windows' records, the events before it opened, the signals of the windows around
it and the live version's reference. So a diagnosis is kept, keyed by what could change it: the
incident's last update, state, severity, timeline length and actions' states (a person undoing
an action later), the deployment's revision (the reference) and, while the signals' margin
after the incident is still filling, the model's newest window. An open incident is diagnosed
again once per window, not at each view. At most ``size`` diagnoses are kept, least recently
viewed dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from mlwarden.agent import reports
from mlwarden.agent.reports import SIGNAL_MARGIN
from mlwarden.diagnose.checks import fill_checks
from mlwarden.diagnose.incident import IncidentDiagnosis
from mlwarden.store import Store
from mlwarden.store.incidents import AgentRepo

__all__ = ["IncidentDiagnoses"]


def _version(store: Store, incident: dict[str, Any]) -> tuple[Any, ...]:
    deployment = store.get_deployment(incident["model"])
    newest = AgentRepo(store).last_window(incident["model"])
    return (
        str(incident.get("updated_at")),
        incident["state"],
        incident.get("severity"),
        incident.get("last_window"),
        len(incident.get("timeline") or []),
        tuple((a["id"], a["state"]) for a in incident.get("actions") or []),
        None if deployment is None else deployment.revision,
        # the diagnosis reads signals up to SIGNAL_MARGIN windows after the incident's last
        None if newest is None else min(newest, incident["last_window"] + SIGNAL_MARGIN),
    )


class IncidentDiagnoses:
    """A ``diagnose`` for :func:`mlwarden.agent.reports.incident_context` that keeps
    incidents' diagnoses; the checks' ``INCIDENT`` placeholder is filled with the incident."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._kept: OrderedDict[int, tuple[tuple[Any, ...], IncidentDiagnosis]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(
        self, store: Store, incident: dict[str, Any], findings: list[dict[str, Any]], model_id: int
    ) -> IncidentDiagnosis:
        incident_id = int(incident["id"])
        version = _version(store, incident)
        with self._lock:
            kept = self._kept.get(incident_id)
            if kept is not None and kept[0] == version:
                self._kept.move_to_end(incident_id)
                return kept[1]
        diagnosis = reports.diagnose_stored_incident(store, incident, findings, model_id)
        # the checks' INCIDENT is this incident (``mlwarden report INCIDENT``)
        diagnosis.checks = fill_checks(diagnosis.checks, incident=incident_id)
        with self._lock:
            self._kept[incident_id] = (version, diagnosis)
            self._kept.move_to_end(incident_id)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return diagnosis
