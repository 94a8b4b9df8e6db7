"""Incident diagnoses made in a process of their own, beside the web server's.

A diagnosis is a third of a second of one core on the demo at rest and seconds on a busy
machine (reading the incident's records and signals, the playbooks, the culprits). Made in a
thread of the server, it held the interpreter (the GIL) while pages were being answered: a
page asked for at the moment a window closed, while its incident's new diagnosis was being
made, took 0.2-1.3 s against a 300 ms target (docs/benchmarks.md). Made here, in one spawned
process that reads the store on its own connection, a page only waits on the answer (it holds
no lock meanwhile) or shows the diagnosis kept from the window before.

One process: diagnoses queue rather than take both cores from the pages. It is started with
the server's diagnosis warmer (or at the first diagnosis); until its imports are done (seconds
on a busy machine) diagnoses are made in the calling thread as before, rather than making a
first view wait for them. A process that dies is replaced (the diagnosis it was making is made
in the calling thread). An in-memory SQLite store cannot be opened by another process: there
diagnoses stay in threads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any

from mlwarden.lazy import lazy_module
from mlwarden.store import Store

if TYPE_CHECKING:
    from mlwarden.diagnose.incident import IncidentDiagnosis

# imported at the first diagnosis: the agent's worker pool brings the monitor's modules, which
# a server imports only once it has an incident to diagnose (docs/benchmarks.md, "Gateway
# overhead")
_workers = lazy_module("mlwarden.agent.workers")

__all__ = ["DiagnosisProcess", "diagnose_here"]

log = logging.getLogger(__name__)


def diagnose_here(
    store: Store, incident: Mapping[str, Any], findings: list[dict[str, Any]], model_id: int
) -> IncidentDiagnosis:
    """The incident's diagnosis, made in this thread; the checks' ``INCIDENT`` placeholder is
    filled with the incident (``mlwarden report INCIDENT``)."""
    from mlwarden.agent import reports
    from mlwarden.diagnose.checks import fill_checks

    diagnosis = reports.diagnose_stored_incident(store, incident, findings, model_id)
    diagnosis.checks = fill_checks(diagnosis.checks, incident=int(incident["id"]))
    return diagnosis


class DiagnosisProcess:
    """Makes diagnoses in one worker process, for the stores that process can open (unless
    not ``enabled``: then in the calling thread)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._executor: ProcessPoolExecutor | None = None
        self._url: str | None = None
        self._lock = threading.Lock()
        self._started: Future[int] = Future()  # done once the process takes diagnoses
        self.closed = False

    def diagnose(
        self,
        store: Store,
        incident: Mapping[str, Any],
        findings: list[dict[str, Any]],
        model_id: int,
    ) -> IncidentDiagnosis:
        """:func:`diagnose_here`, made in the worker process when it can open ``store``."""
        pool = self._pool(store)
        if pool is None or not self._started.done():
            # still starting (its imports take seconds on a busy machine): not waited for
            return diagnose_here(store, incident, findings, model_id)
        try:
            return pool.submit(_diagnose, dict(incident), findings, model_id).result()
        except BrokenProcessPool:
            log.warning("the diagnosis process stopped: diagnosing in the server's thread")
            with self._lock:
                if self._executor is pool:
                    self._executor = None
            pool.shutdown(wait=False)
            return diagnose_here(store, incident, findings, model_id)

    def _pool(self, store: Store) -> ProcessPoolExecutor | None:
        if self.closed or not self.enabled or not _workers.poolable(store):
            return None
        url = store.engine.url.render_as_string(hide_password=False)
        with self._lock:
            if self._executor is not None and self._url != url:
                return None  # another store than the process's: made here
            if self._executor is None:
                self._url = url
                # spawned, not forked: the server has threads and open connections
                self._executor = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=get_context("spawn"),
                    initializer=_start,
                    initargs=(url, os.getpid()),
                )
                self._started = self._executor.submit(int)  # start it (and its imports) now
            return self._executor

    def wait_started(self, store: Store, timeout_s: float | None = None) -> bool:
        """Start the process for ``store`` and wait until it takes diagnoses; False when it
        cannot (an in-memory store, turned off, closed) or did not in ``timeout_s``."""
        if self._pool(store) is None:
            return False
        try:
            self._started.result(timeout_s)
        except TimeoutError:
            return False
        except BrokenProcessPool:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self.closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            # not waited for: a process still starting ends once its imports are done
            executor.shutdown(wait=False, cancel_futures=True)


_STORE: Store | None = None  # the worker process's own connection to the store


def _start(url: str, parent: int) -> None:
    global _STORE
    _workers.exit_with(parent)  # a killed server cannot stop it
    _STORE = Store(url, migrate=False)
    import mlwarden.agent.reports  # noqa: F401  (its imports, before the first diagnosis)


def _diagnose(
    incident: dict[str, Any], findings: list[dict[str, Any]], model_id: int
) -> IncidentDiagnosis:
    assert _STORE is not None, "the diagnosis process was not started"
    return diagnose_here(_STORE, incident, findings, model_id)
