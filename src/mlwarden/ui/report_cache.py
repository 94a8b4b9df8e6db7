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

One incident is diagnosed by one thread at a time: a page asking while another request or the
warmer (:mod:`mlwarden.ui.report_warmer`, which diagnoses open incidents as their windows
close, off the request path) is diagnosing the same incident in the same state waits for that
diagnosis instead of making a second one beside it (two at once on 2 cores took each about
twice as long).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from mlwarden.agent import reports
from mlwarden.agent.reports import SIGNAL_MARGIN
from mlwarden.diagnose.checks import fill_checks
from mlwarden.diagnose.incident import IncidentDiagnosis
from mlwarden.store import Store
from mlwarden.store.incidents import AgentRepo
from mlwarden.ui.server_state import kept_on

__all__ = ["IncidentDiagnoses", "server_diagnoses"]


def _version(store: Store, incident: Mapping[str, Any]) -> tuple[Any, ...]:
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


def _as_of(version: tuple[Any, ...]) -> int:
    """The newest window a diagnosis made for ``version`` (see :func:`_version`) saw."""
    return int(version[-1] if version[-1] is not None else version[3])


def _headline(incident: Mapping[str, Any]) -> tuple[Any, ...]:
    """What an incident page's header says of the cause: a diagnosis shown under it must agree."""
    return (incident.get("diagnosis"), incident.get("severity"))


class IncidentDiagnoses:
    """A ``diagnose`` for :func:`mlwarden.agent.reports.incident_context` that keeps
    incidents' diagnoses; the checks' ``INCIDENT`` placeholder is filled with the incident."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        # by incident: the state a diagnosis was made for, the diagnosis, and the incident's
        # headline (diagnosis kind, severity) then
        self._kept: OrderedDict[int, tuple[tuple[Any, ...], IncidentDiagnosis, tuple[Any, ...]]] = (
            OrderedDict()
        )
        # the diagnosis being made of an incident, by the state it is made for
        self._making: dict[int, tuple[tuple[Any, ...], Future[IncidentDiagnosis]]] = {}
        self._lock = threading.Lock()
        self.made = 0  # diagnoses made (not answered from memory), for tests and benchmarks

    def kept_ids(self) -> list[int]:
        """The incidents a diagnosis is kept of, least recently viewed first."""
        with self._lock:
            return list(self._kept)

    def forget(self, incident_id: int) -> None:
        """Drop what is kept of an incident (deleted with its model)."""
        with self._lock:
            self._kept.pop(incident_id, None)

    def is_current(self, store: Store, incident: Mapping[str, Any]) -> bool:
        """Whether the diagnosis kept for ``incident`` (as :meth:`AgentRepo.get_incident`
        returns it) is that of its present state."""
        version = _version(store, incident)
        with self._lock:
            kept = self._kept.get(int(incident["id"]))
        return kept is not None and kept[0] == version

    def __call__(
        self,
        store: Store,
        incident: Mapping[str, Any],
        findings: list[dict[str, Any]],
        model_id: int,
    ) -> IncidentDiagnosis:
        claimed, version, mine = self._claim(store, incident)
        if isinstance(claimed, IncidentDiagnosis):
            return claimed
        if mine:
            self._make(store, incident, findings, model_id, version, claimed)
        return claimed.result()

    def for_page(
        self,
        store: Store,
        incident: Mapping[str, Any],
        findings: list[dict[str, Any]],
        model_id: int,
        wait_s: float = 0.1,
    ) -> tuple[IncidentDiagnosis, int | None]:
        """The diagnosis for an incident's page, and the newest window it saw if it is not that
        of the present state (``None`` when current).

        At the moment a window closes, an open incident's diagnosis is out of date and making it
        takes seconds on a busy machine (docs/benchmarks.md). A page waits for it at most
        ``wait_s``, then shows the one kept from the window before, said to be so, while the new
        one is made in the background (the live update tells when it is ready). Only where the
        kept one agrees with the incident's present headline, its diagnosis kind and severity:
        otherwise the page waits, so header and body never disagree."""
        with self._lock:
            kept = self._kept.get(int(incident["id"]))
        claimed, version, mine = self._claim(store, incident)
        if isinstance(claimed, IncidentDiagnosis):
            return claimed, None
        stale = kept is not None and kept[2] == _headline(incident)
        if not stale:
            if mine:
                self._make(store, incident, findings, model_id, version, claimed)
            return claimed.result(), None
        if mine:
            threading.Thread(
                target=self._make,
                args=(store, incident, findings, model_id, version, claimed),
                name="mlw-diagnosis",
                daemon=True,
            ).start()
        try:
            return claimed.result(timeout=wait_s), None
        except TimeoutError:
            assert kept is not None
            return kept[1], _as_of(kept[0])
        except Exception:
            # the new diagnosis failed: the kept one is still the best this page can show
            assert kept is not None
            return kept[1], _as_of(kept[0])

    def _claim(
        self, store: Store, incident: Mapping[str, Any]
    ) -> tuple[IncidentDiagnosis | Future[IncidentDiagnosis], tuple[Any, ...], bool]:
        """The kept diagnosis when current; otherwise the future of the one being made for the
        present state. With the state, and whether the caller claimed the future (and so must
        make the diagnosis)."""
        incident_id = int(incident["id"])
        version = _version(store, incident)
        with self._lock:
            kept = self._kept.get(incident_id)
            if kept is not None and kept[0] == version:
                self._kept.move_to_end(incident_id)
                return kept[1], version, False
            making = self._making.get(incident_id)
            if making is not None and making[0] == version:
                return making[1], version, False
            mine: Future[IncidentDiagnosis] = Future()
            self._making[incident_id] = (version, mine)
            return mine, version, True

    def _make(
        self,
        store: Store,
        incident: Mapping[str, Any],
        findings: list[dict[str, Any]],
        model_id: int,
        version: tuple[Any, ...],
        future: Future[IncidentDiagnosis],
    ) -> None:
        """Make the diagnosis claimed as ``future`` for the incident's state ``version``; its
        result or its error goes to the future."""
        incident_id = int(incident["id"])
        try:
            diagnosis = reports.diagnose_stored_incident(store, incident, findings, model_id)
            # the checks' INCIDENT is this incident (``mlwarden report INCIDENT``)
            diagnosis.checks = fill_checks(diagnosis.checks, incident=incident_id)
        except BaseException as exc:
            future.set_exception(exc)
            self._done(incident_id, future)
            if not isinstance(exc, Exception):
                raise
            return
        future.set_result(diagnosis)
        with self._lock:
            self.made += 1
            self._kept[incident_id] = (version, diagnosis, _headline(incident))
            self._kept.move_to_end(incident_id)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        self._done(incident_id, future)

    def _done(self, incident_id: int, future: Future[IncidentDiagnosis]) -> None:
        with self._lock:
            making = self._making.get(incident_id)
            if making is not None and making[1] is future:
                del self._making[incident_id]


def server_diagnoses(state: Any) -> IncidentDiagnoses:
    """The diagnoses kept by the server whose :class:`~mlwarden.api.deps.ServerState` is
    ``state`` (made on first use): the pages, the report downloads and the warmer share them."""
    return kept_on(state, "_ui_diagnoses", IncidentDiagnoses)
