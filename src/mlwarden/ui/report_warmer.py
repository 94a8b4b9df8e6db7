"""Open incidents diagnosed as their windows close, so nobody opening their page waits for it.

The dashboard keeps each incident's diagnosis (:mod:`mlwarden.ui.report_cache`) until the
incident, the deployment or the model's newest window changes. A closed incident then stays
kept, but an open one changes with every window, and the first view after each window made
the diagnosis on the request path: 0.6-1.8 s of server time on the demo at a load of 17-19,
against a 300 ms target (docs/benchmarks.md). The warmer makes it off the request path: a
daemon thread of the server that, at each pass of the agent in the server (:meth:`wake`) and
at least every ``interval_s`` (the agent's interval: windows close no more often, and an agent
in another process or on another replica is seen that way), diagnoses again every open
incident, and every incident kept in memory (viewed before, or open while this server ran),
whose kept diagnosis is no longer current: a closed incident's diagnosis reads the signals of the
20 windows after it, so it too changes with each window until those are in. A page asked
for while it is at work waits for the same diagnosis rather than making a second one
(``IncidentDiagnoses`` makes one at a time).

It costs what the first view cost, once per such incident per window whether or not anybody
looks (the demo's open incident: 0.3-1 s of one core per window), spent in the diagnosis
process (:mod:`mlwarden.ui.diagnosis_process`, started by the warmer's first pass when the
store has incidents) rather than in the server's interpreter; a diagnosis another server
process stored already is not made again. ``warm_diagnoses=False`` in the settings turns it
off. At most ``max_incidents`` incidents are warmed per pass, the most
recently updated first. A closed incident never kept (closed before this server started) is
still diagnosed at its first view, once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from mlwarden.errors import NotFound
from mlwarden.store import Store
from mlwarden.store.incidents import OPEN_STATES, AgentRepo
from mlwarden.ui.report_cache import IncidentDiagnoses

__all__ = ["DiagnosisWarmer"]

log = logging.getLogger(__name__)


class DiagnosisWarmer:
    """Keeps the diagnoses of open incidents current in ``diagnoses``, from a daemon thread."""

    def __init__(
        self,
        store: Store,
        diagnoses: IncidentDiagnoses,
        interval_s: float = 5.0,
        max_incidents: int = 20,
    ) -> None:
        self.store = store
        self.diagnoses = diagnoses
        self.interval_s = interval_s
        self.max_incidents = max_incidents
        # incidents whose diagnosis failed, by the state it failed in: not tried (and logged)
        # again at every pass until they change
        self._failed: dict[int, str] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlw-diagnoses", daemon=True)

    def start(self) -> DiagnosisWarmer:
        self._thread.start()
        return self

    def wake(self, *_: Any) -> None:
        """Look now (the agent in the server just closed windows); any arguments are ignored,
        so it can be handed to the agent as its after-pass callback."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def warm(self) -> int:
        """Diagnose every open incident, and every incident kept in memory, whose diagnosis is
        not current; how many were (at most ``max_incidents``, the most recently updated)."""
        repo = AgentRepo(self.store)
        wanted = set(self.diagnoses.kept_ids())
        for state in OPEN_STATES:
            wanted.update(
                i["id"] for i in repo.list_incidents(state=state, limit=self.max_incidents)
            )
        incidents = []
        for incident_id in wanted:
            try:
                incidents.append(repo.get_incident(int(incident_id)))
            except NotFound:  # deleted with its model
                self.diagnoses.forget(int(incident_id))
        incidents.sort(key=lambda i: str(i.get("updated_at")), reverse=True)
        made = 0
        for incident in incidents[: self.max_incidents]:
            if self._stop.is_set():
                break
            failed_in = f"{incident.get('updated_at')}/{incident.get('last_window')}"
            if self._failed.get(incident["id"]) == failed_in or self.diagnoses.is_current(
                self.store, incident
            ):
                continue
            # imported at the first incident to diagnose: the reports bring the monitor's and
            # the diagnosis' modules, which a server without incidents never needs
            from mlwarden.agent.reports import incident_context

            try:
                context = incident_context(self.store, incident["id"], diagnose=self.diagnoses)
            except NotFound:
                continue
            if context["diagnosis_error"]:
                self._failed[incident["id"]] = failed_in
                log.warning(
                    "incident %s cannot be diagnosed: %s",
                    incident["id"],
                    context["diagnosis_error"],
                )
            made += 1
        return made

    def _run(self) -> None:
        try:
            if AgentRepo(self.store).list_incidents(limit=1):
                # started now, not waited for: until its imports are done (seconds on a busy
                # machine) diagnoses are made in this thread, as a page's are
                self.diagnoses.process.wait_started(self.store, 0)
        except Exception:  # started at the first diagnosis instead
            log.exception("starting the diagnosis process failed")
        while not self._stop.is_set():
            try:
                self.warm()
            except Exception:  # the pages still diagnose on demand
                log.exception("warming incident diagnoses failed")
            self._wake.wait(self.interval_s)
            self._wake.clear()
