"""Incident diagnoses kept in memory and in the store so their pages and reports are not
worked out again at every view, nor by every server process.

Diagnosing an incident reads its windows' signals and records and runs the playbooks (a few
hundred milliseconds on the demo, seconds on a long incident). What it reads is bounded by the
incident: its windows' records, the events before it opened, the signals of the windows around
it and the live version's reference. So a diagnosis is kept, keyed by what could change it: the
incident's last update, state, severity, timeline length and actions' states (a person undoing
an action later), the deployment's revision (the reference) and, while the signals' margin
after the incident is still filling, the model's newest window. An open incident is diagnosed
again once per window, not at each view. At most ``size`` diagnoses are kept in memory, least
recently viewed dropped; the newest of each incident is also stored (``incident_diagnoses``),
so another server process (``--workers N``, a replica) or a restarted one reads it instead of
making it again. Diagnoses are made in a process of their own
(:mod:`mlwarden.ui.diagnosis_process`): a page being answered meanwhile does not share the
interpreter with one.

One incident is diagnosed by one thread at a time: a page asking while another request or the
warmer (:mod:`mlwarden.ui.report_warmer`, which diagnoses open incidents as their windows
close, off the request path) is diagnosing the same incident in the same state waits for that
diagnosis instead of making a second one beside it (two at once on 2 cores took each about
twice as long).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlwarden.lazy import lazy_module
from mlwarden.store import Store
from mlwarden.store.diagnoses import StoredDiagnoses, StoredDiagnosis
from mlwarden.store.incidents import AgentRepo
from mlwarden.ui.diagnosis_process import DiagnosisProcess
from mlwarden.ui.server_state import kept_on

if TYPE_CHECKING:
    from mlwarden.diagnose.incident import IncidentDiagnosis

# imported at the first diagnosis: the server makes this cache at start (the warmer holds it),
# and the diagnosis and reports modules bring the monitor's and the playbooks' (about 2 MB of
# a server that never opens an incident, docs/benchmarks.md, "Gateway overhead")
_incident = lazy_module("mlwarden.diagnose.incident")
_reports = lazy_module("mlwarden.agent.reports")

__all__ = ["IncidentDiagnoses", "server_diagnoses"]

log = logging.getLogger(__name__)


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
        None if newest is None else min(newest, incident["last_window"] + _reports.SIGNAL_MARGIN),
        # the incident itself: a stored diagnosis outlives a server's memory
        str(incident.get("opened_at")),
    )


def _key(version: tuple[Any, ...]) -> str:
    """``version`` (see :func:`_version`) as the text stored beside a diagnosis: the same in
    every server process."""
    return json.dumps(version, default=str)


def _as_of(version: tuple[Any, ...]) -> int:
    """The newest window a diagnosis made for ``version`` (see :func:`_version`) saw."""
    return int(version[7] if version[7] is not None else version[3])


def _headline(incident: Mapping[str, Any]) -> list[Any]:
    """What an incident page's header says (diagnosis kind, severity, state), for the incident
    that opened then: a diagnosis shown under it must agree. Only a new window may leave the
    diagnosis one window behind; a closed or escalated incident's page waits for its own."""
    headline = [
        incident.get("diagnosis"),
        incident.get("severity"),
        incident.get("state"),
        incident.get("opened_at"),
    ]
    return list(json.loads(json.dumps(headline, default=str)))


@dataclass(frozen=True)
class _Kept:
    """A diagnosis made: for the incident's state ``key``, seeing windows up to ``as_of``,
    under the incident's ``headline`` then."""

    key: str
    as_of: int
    headline: list[Any]
    diagnosis: IncidentDiagnosis


class IncidentDiagnoses:
    """A ``diagnose`` for :func:`mlwarden.agent.reports.incident_context` that keeps
    incidents' diagnoses, in memory and in the store (``incident_diagnoses``, read by every
    server process); the checks' ``INCIDENT`` placeholder is filled with the incident. They
    are made by :class:`~mlwarden.ui.diagnosis_process.DiagnosisProcess`, off the server's
    interpreter."""

    def __init__(self, size: int = 256, separate_process: bool = True) -> None:
        self.size = size
        # by incident: the newest diagnosis made or read from the store
        self._kept: OrderedDict[int, _Kept] = OrderedDict()
        # the diagnosis being made of an incident, by the state it is made for
        self._making: dict[int, tuple[str, Future[IncidentDiagnosis]]] = {}
        self._lock = threading.Lock()
        self.process = DiagnosisProcess(enabled=separate_process)
        self.made = 0  # diagnoses made (not answered from memory), for tests and benchmarks

    def close(self) -> None:
        """Stop the diagnosis process (the server stops)."""
        self.process.close()

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
        returns it), here or by another server process, is that of its present state."""
        key = _key(_version(store, incident))
        with self._lock:
            kept = self._kept.get(int(incident["id"]))
        if kept is not None and kept.key == key:
            return True
        return StoredDiagnoses(store).key(int(incident["id"])) == key

    def __call__(
        self,
        store: Store,
        incident: Mapping[str, Any],
        findings: list[dict[str, Any]],
        model_id: int,
    ) -> IncidentDiagnosis:
        claimed, key, mine, _ = self._claim(store, incident)
        if not isinstance(claimed, Future):
            return claimed
        if mine:
            self._make(store, incident, findings, model_id, key, claimed)
        return claimed.result()

    def for_page(
        self,
        store: Store,
        incident: Mapping[str, Any],
        findings: list[dict[str, Any]],
        model_id: int,
        wait_s: float = 0.0,
    ) -> tuple[IncidentDiagnosis, int | None]:
        """The diagnosis for an incident's page, and the newest window it saw if it is not that
        of the present state (``None`` when current).

        At the moment a window closes, an open incident's diagnosis is out of date and making it
        takes a third of a second to seconds (docs/benchmarks.md). A page waits for it at most
        ``wait_s`` (by default not at all: a wait of 50-100 ms was rarely long enough and added
        to every such view), then shows the one kept from the window before, said to be so,
        while the new one is made in the background (the live update tells when it is ready).
        Only where the kept one agrees with the incident's present headline, its diagnosis kind,
        severity and state: otherwise the page waits, so header and body never disagree."""
        claimed, key, mine, kept = self._claim(store, incident)
        if not isinstance(claimed, Future):
            return claimed, None
        stale = kept is not None and kept.headline == _headline(incident)
        if not stale:
            if mine:
                self._make(store, incident, findings, model_id, key, claimed)
            return claimed.result(), None
        if mine:
            threading.Thread(
                target=self._make,
                args=(store, incident, findings, model_id, key, claimed),
                name="mlw-diagnosis",
                daemon=True,
            ).start()
        assert kept is not None
        try:
            return claimed.result(timeout=wait_s), None
        except TimeoutError:
            return kept.diagnosis, kept.as_of
        except Exception:
            # the new diagnosis failed: the kept one is still the best this page can show
            return kept.diagnosis, kept.as_of

    def _claim(
        self, store: Store, incident: Mapping[str, Any]
    ) -> tuple[IncidentDiagnosis | Future[IncidentDiagnosis], str, bool, _Kept | None]:
        """The kept diagnosis when current (in memory, or stored by any server process);
        otherwise the future of the one being made for the present state. With the state's
        key, whether the caller claimed the future (and so must make the diagnosis), and the
        newest diagnosis kept of the incident (current or not)."""
        incident_id = int(incident["id"])
        version = _version(store, incident)
        key = _key(version)
        with self._lock:
            kept = self._kept.get(incident_id)
            if kept is not None and kept.key == key:
                self._kept.move_to_end(incident_id)
                return kept.diagnosis, key, False, kept
            making = self._making.get(incident_id)
            if making is not None and making[0] == key:
                return making[1], key, False, kept
        stored = self._stored(store, incident_id)
        with self._lock:
            kept = self._kept.get(incident_id)
            # the stored one when current, or newer than the one in memory (made elsewhere)
            newer = stored is not None and (
                kept is None or stored.key == key or stored.as_of > kept.as_of
            )
            if stored is not None and newer and (kept is None or kept.key != key):
                self._keep(incident_id, stored)
                kept = stored
            if kept is not None and kept.key == key:
                return kept.diagnosis, key, False, kept
            making = self._making.get(incident_id)
            if making is not None and making[0] == key:
                return making[1], key, False, kept
            mine: Future[IncidentDiagnosis] = Future()
            self._making[incident_id] = (key, mine)
            return mine, key, True, kept

    @staticmethod
    def _stored(store: Store, incident_id: int) -> _Kept | None:
        """The incident's diagnosis kept in the store, if any can be read."""
        stored = StoredDiagnoses(store).get(incident_id)
        if stored is None:
            return None
        try:
            diagnosis = _incident.IncidentDiagnosis.model_validate_json(stored.diagnosis)
        except ValueError:  # not an IncidentDiagnosis any more (an older shape): made again
            log.warning("the stored diagnosis of incident %s is not read", incident_id)
            return None
        return _Kept(stored.key, stored.as_of, stored.headline, diagnosis)

    def _keep(self, incident_id: int, kept: _Kept) -> None:
        """Keep ``kept`` in memory (the caller holds the lock)."""
        self._kept[incident_id] = kept
        self._kept.move_to_end(incident_id)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)

    def _make(
        self,
        store: Store,
        incident: Mapping[str, Any],
        findings: list[dict[str, Any]],
        model_id: int,
        key: str,
        future: Future[IncidentDiagnosis],
    ) -> None:
        """Make the diagnosis claimed as ``future`` for the incident's state ``key``; its
        result or its error goes to the future. The result is kept in memory and stored."""
        incident_id = int(incident["id"])
        try:
            diagnosis = self.process.diagnose(store, incident, findings, model_id)
        except BaseException as exc:
            future.set_exception(exc)
            self._done(incident_id, future)
            if not isinstance(exc, Exception):
                raise
            return
        kept = _Kept(key, _as_of(json.loads(key)), _headline(incident), diagnosis)
        stored = StoredDiagnosis(kept.key, kept.as_of, kept.headline, diagnosis.model_dump_json())
        if not StoredDiagnoses(store).put(incident_id, stored):
            log.info(
                "the diagnosis of incident %s is not stored (deleted, or stored by another "
                "process at once)",
                incident_id,
            )
        future.set_result(diagnosis)
        with self._lock:
            self.made += 1
            self._keep(incident_id, kept)
        self._done(incident_id, future)

    def _done(self, incident_id: int, future: Future[IncidentDiagnosis]) -> None:
        with self._lock:
            making = self._making.get(incident_id)
            if making is not None and making[1] is future:
                del self._making[incident_id]


def server_diagnoses(state: Any) -> IncidentDiagnoses:
    """The diagnoses kept by the server whose :class:`~mlwarden.api.deps.ServerState` is
    ``state`` (made on first use): the pages, the report downloads and the warmer share them."""
    return kept_on(
        state,
        "_ui_diagnoses",
        lambda: IncidentDiagnoses(separate_process=state.settings.diagnosis_process),
    )
