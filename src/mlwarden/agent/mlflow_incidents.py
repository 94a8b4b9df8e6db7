"""Closed incidents logged to MLflow tracking, when a tracking server is named.

Teams that keep their experiments in MLflow see there what happened to the models in
production: one run per closed incident in the experiment ``mlwarden-incidents``, tagged with
the model, scope, state, severity, diagnosis and finding kinds, its windows and actions as
parameters, every signal of its windows (and ``MARGIN`` windows either side) as metrics by
window (the step), and the incident itself as ``incident.json``. The agent logs the incidents
closed since its last pass after each pass (``mlwarden serve``'s agent and ``mlwarden agent``);
an incident already logged (tag ``mlwarden.incident``, looked up once per process) is not
logged again. Nothing happens unless the ``mlflow`` package is installed and
``MLFLOW_TRACKING_URI`` is set: without one MLflow would write ``./mlruns`` wherever the
process runs.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re

from mlwarden.agent.reports import incident_signals
from mlwarden.registry.mlflow import artifact_location
from mlwarden.store import Store
from mlwarden.store.incidents import CLOSED_STATES, AgentRepo

__all__ = ["EXPERIMENT", "IncidentRuns", "tracking_uri"]

EXPERIMENT = "mlwarden-incidents"
MARGIN = 5  # windows of signals logged before and after the incident's own
TAG = "mlwarden.incident"
log = logging.getLogger(__name__)


def tracking_uri() -> str | None:
    """The MLflow tracking server named in the environment, when MLflow is installed."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri or importlib.util.find_spec("mlflow") is None:
        return None
    return uri


def _key(name: str) -> str:
    return re.sub(r"[^\w./ -]", "_", name)[:250]


class IncidentRuns:
    """Logs a store's closed incidents to the MLflow tracking server at ``uri``, once each."""

    def __init__(self, store: Store, uri: str) -> None:
        from mlflow import MlflowClient

        self.store = store
        self.client = MlflowClient(uri)
        found = self.client.get_experiment_by_name(EXPERIMENT)
        self.experiment_id = (
            found.experiment_id
            if found
            else self.client.create_experiment(EXPERIMENT, artifact_location=artifact_location(uri))
        )
        self._logged: set[int] = set()
        token = None
        while True:  # the incidents logged by earlier processes
            page = self.client.search_runs(
                [self.experiment_id], max_results=1_000, page_token=token
            )
            self._logged.update(int(r.data.tags[TAG]) for r in page if TAG in r.data.tags)
            token = page.token
            if not token:
                break

    def log_closed(self, limit: int = 100) -> list[str]:
        """Log every closed incident not logged yet (the newest ``limit`` of each state); the
        run ids."""
        repo = AgentRepo(self.store)
        runs = []
        for state in CLOSED_STATES:
            for incident in repo.list_incidents(state=state, limit=limit):
                if int(incident["id"]) not in self._logged:
                    runs.append(self.log_incident(int(incident["id"])))
        return runs

    def log_incident(self, incident_id: int) -> str:
        """One run for the incident: tags, parameters, its signals by window, its record."""
        from mlflow.entities import Metric, Param, RunTag

        incident = AgentRepo(self.store).get_incident(incident_id)
        model = incident["model"]
        first, last = incident["first_window"], incident["last_window"]
        signals = incident_signals(self.store, self.store.model_id(model), first, last, MARGIN)
        tags = {
            TAG: str(incident_id),
            "mlwarden.model": model,
            "mlwarden.scope": str(incident.get("scope")),
            "mlwarden.state": incident["state"],
            "mlwarden.severity": str(incident.get("severity")),
            "mlwarden.diagnosis": str(incident.get("diagnosis")),
            "mlwarden.kinds": ",".join(incident.get("kinds") or []),
        }
        params = {
            "first_window": first,
            "last_window": last,
            "features": ",".join(incident.get("features") or []),
            "opened_at": incident.get("opened_at"),
            "closed_at": incident.get("closed_at"),
            "actions": "; ".join(
                f"{a['kind']} ({a['state']})" for a in incident.get("actions") or []
            ),
        }
        run = self.client.create_run(
            self.experiment_id, run_name=f"{model} incident {incident_id}", tags=tags
        )
        run_id: str = run.info.run_id
        metrics = [
            Metric(_key(name), float(value), 0, int(row["window"]))
            for row in signals
            for name, value in row.items()
            if name not in ("window", "time")
            and isinstance(value, int | float)
            and math.isfinite(float(value))
        ]
        self.client.log_batch(
            run_id,
            params=[Param(k, str(v)[:500]) for k, v in params.items()],
            tags=[RunTag("mlwarden.windows", f"{first}-{last}")],
        )
        for k in range(0, len(metrics), 1_000):  # MLflow takes at most 1,000 per batch
            self.client.log_batch(run_id, metrics=metrics[k : k + 1_000])
        self.client.log_text(run_id, json.dumps(incident, default=str, indent=1), "incident.json")
        self.client.set_terminated(run_id)
        self._logged.add(incident_id)
        return run_id


def log_closed_incidents(store: Store, runs: list[IncidentRuns]) -> None:
    """After an agent's pass: log what closed, when a tracking server is named (``runs`` keeps
    the :class:`IncidentRuns` between passes); a failure is logged, the agent goes on."""
    uri = tracking_uri()
    if uri is None:
        return
    try:
        if not runs:
            runs.append(IncidentRuns(store, uri))
        runs[0].log_closed()
    except Exception:
        log.exception("logging closed incidents to MLflow failed")
