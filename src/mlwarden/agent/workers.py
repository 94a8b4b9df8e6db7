"""The agent's pass over every core: the monitors of a fleet in worker processes.

Closing a model's windows (reading its records, building the monitor's table, running the
detectors) is most of the CPU of a pass and writes nothing; one process runs it on one core, so
a pass over 1,000 models took about 70 s of CPU (docs/benchmarks.md, "A fleet").
:class:`PooledSource` hands it to ``Settings.agent_workers`` worker processes, each of which
reads the store on its own connection and holds the monitors of a fixed share of the models (a
monitor keeps state from window to window: its streaming detectors, the performance history).
Everything that writes stays with the agent that leads: it stores the windows a worker handed
back, opens and moves incidents on, acts through the journal, exactly as with one process, so
the leadership lock and crash recovery are untouched. At the start of a pass the agent asks for
every model's windows at once (:meth:`PooledSource.start_pass`); it then takes each model's in
turn as before, storing and deciding on one model while the workers close the windows of the
next ones.

A worker that dies (killed, out of memory) loses nothing stored: the model it was closing gets
an error for this pass, as any failure of a model does, and since its windows were never
stored they are read and closed again on the next pass, by a new worker (whose monitors start
afresh, as after a restart of the agent); the models queued behind it go to the new worker at
once.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from multiprocessing import get_context

from mlwarden.agent.monitor_source import ClosedWindow, MonitorSource
from mlwarden.monitor.engine import MonitorConfig
from mlwarden.settings import Settings
from mlwarden.store.repository import Store

log = logging.getLogger("mlwarden.agent")


class WorkerLost(RuntimeError):
    """The worker process closing a model's windows stopped before it answered."""


def poolable(store: Store) -> bool:
    """True when worker processes can open ``store`` themselves (not an in-memory SQLite)."""
    database = store.engine.url.database
    return store.dialect != "sqlite" or bool(database and database != ":memory:")


@dataclass
class _Slot:
    """One worker process (an executor of one process, so its models' monitors stay in it)."""

    executor: ProcessPoolExecutor
    generation: int = 0  # how many times its process was replaced
    models: int = 0


Request = tuple[str, int | None, MonitorConfig]  # a model, its last stored window, settings
Outcome = list[ClosedWindow] | Exception  # a model's closed windows, or why it failed


@dataclass
class _Chunk:
    """Consecutive models of one worker sent as one request: a request per model left the
    workers waiting for the agent's process to hand them the next one, which on a loaded
    machine it is not scheduled to do at once."""

    models: list[Request]
    slot: int
    generation: int
    future: Future[list[Outcome]]


# the most models in one request: the agent stores and decides on a model only once its
# chunk is closed, so a chunk is small beside a pass (a model's windows take 30-70 ms)
CHUNK = 16


class PooledSource(MonitorSource):
    """A :class:`MonitorSource` whose windows are closed by ``workers`` processes.

    The processes start at the first pass (an agent waiting for the leadership holds none) and
    stop with :meth:`close`. The monitor's settings and the settle time's cutoff are the
    agent's, sent with each request: the workers see the policy the agent holds and its clock.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        config: MonitorConfig | None = None,
        detection: Callable[[str], MonitorConfig] | None = None,
        *,
        workers: int = 2,
    ) -> None:
        super().__init__(store, settings, config, detection)
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if not poolable(store):
            raise ValueError("worker processes cannot open an in-memory SQLite store")
        self.workers = workers
        self._url = store.engine.url.render_as_string(hide_password=False)
        self._slots: list[_Slot] = []
        self._slot_of: dict[str, int] = {}
        # each model's request of this pass not taken yet: its chunk and place in it
        self._pending: dict[str, tuple[_Chunk, int]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the leader's side

    def start_pass(self, models: Sequence[tuple[str, int | None]]) -> None:
        """Ask for the windows after ``(model, last stored window)`` of every model at once;
        :meth:`closed_windows` then hands each back. Requests of a pass before, never taken,
        are dropped (their windows are asked for again here)."""
        with self._lock:
            for chunk, _ in self._pending.values():
                chunk.future.cancel()
            self._pending = {}
            shares: dict[int, list[Request]] = {}
            for model, after in models:
                shares.setdefault(self._slot(model), []).append((model, after, self._config(model)))
            for slot, requests in shares.items():
                size = self.chunk_size(len(requests))
                for first in range(0, len(requests), size):
                    self._submit(slot, requests[first : first + size])

    @staticmethod
    def chunk_size(requests: int) -> int:
        """Models a request, for a worker's ``requests`` models of a pass: at least four
        chunks a worker, so the first comes back soon, of at most ``CHUNK``."""
        return max(1, min(CHUNK, requests // 4))

    def closed_windows(self, model: str, after: int | None) -> list[ClosedWindow]:
        with self._lock:
            chunk, place = self._pending.pop(model, (None, 0))
            if chunk is None or chunk.models[place][1] != after:
                chunk, place = self._submit(
                    self._slot(model), [(model, after, self._config(model))]
                )
                self._pending.pop(model)
        outcome = self._outcome(model, chunk, place)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _outcome(self, model: str, chunk: _Chunk, place: int) -> Outcome:
        try:
            return chunk.future.result()[place]
        except BrokenProcessPool:
            pass
        with self._lock:
            slot = self._slots[chunk.slot]
            if slot.generation == chunk.generation:
                # the first chunk found broken is the one the process was closing (a worker
                # takes its chunks in order, and the agent in the same order)
                self._restart(chunk.slot)
                if len(chunk.models) == 1:
                    raise WorkerLost(
                        f"the worker process closing the windows of {model} stopped; they "
                        "are read again on the next pass"
                    )
                # which of its models stopped it is not known: each is asked alone, and the
                # one that stops the new worker too fails
                for request in chunk.models:
                    self._submit(chunk.slot, [request])
            else:  # queued behind the one that stopped it: ask the new worker
                self._submit(chunk.slot, chunk.models)
            chunk, place = self._pending.pop(model)
        return self._outcome(model, chunk, place)

    def _slot(self, model: str) -> int:
        """The worker that holds ``model``'s monitor (the caller holds the lock)."""
        if not self._slots:
            self._slots = [_Slot(self._executor()) for _ in range(self.workers)]
        index = self._slot_of.get(model)
        if index is None:  # a model seen for the first time goes to the least loaded worker
            index = min(range(len(self._slots)), key=lambda i: self._slots[i].models)
            self._slot_of[model] = index
            self._slots[index].models += 1
        return index

    def _submit(self, index: int, requests: list[Request]) -> tuple[_Chunk, int]:
        """Send one chunk to a worker and note it as its models' pending request (the caller
        holds the lock); returns the chunk and the place of its last model."""
        slot = self._slots[index]
        future = slot.executor.submit(_close_chunk, requests, self._received_before())
        chunk = _Chunk(requests, index, slot.generation, future)
        for place, (model, _, _) in enumerate(requests):
            self._pending[model] = (chunk, place)
        return chunk, len(requests) - 1

    def _executor(self) -> ProcessPoolExecutor:
        # spawned, not forked: the agent may run beside the server's threads and connections
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=get_context("spawn"),
            initializer=_start_worker,
            initargs=(self._url, self.settings, os.getpid()),
        )

    def _restart(self, index: int) -> None:
        slot = self._slots[index]
        log.error("an agent worker process stopped; starting a new one")
        slot.executor.shutdown(wait=False, cancel_futures=True)
        slot.executor = self._executor()
        slot.generation += 1

    def worker_pids(self) -> list[int]:
        """The process ids of the running workers (for measuring their CPU and memory)."""
        pids: list[int] = []
        for slot in self._slots:
            processes = getattr(slot.executor, "_processes", None) or {}
            pids.extend(int(pid) for pid in processes)
        return pids

    def close(self) -> None:
        """Stop the workers (the next pass starts new ones)."""
        with self._lock:
            for slot in self._slots:
                slot.executor.shutdown(wait=True, cancel_futures=True)
            self._slots, self._slot_of, self._pending = [], {}, {}


# ---------------------------------------------------------------------- the worker's side


class _WorkerSource(MonitorSource):
    """The worker's monitors: the settings and settle cutoff of each request are the agent's."""

    cutoff: datetime | None = None

    def _received_before(self) -> datetime | None:
        return self.cutoff


_SOURCE: _WorkerSource | None = None


def _start_worker(url: str, settings: Settings, parent: int) -> None:
    """Open the store (already migrated by the agent) and watch for the agent's exit."""
    global _SOURCE
    from threadpoolctl import threadpool_limits

    # one thread of BLAS a worker: the workers are the parallelism
    threadpool_limits(1)
    _SOURCE = _WorkerSource(Store(url, migrate=False), settings)
    exit_with(parent)


def exit_with(parent: int) -> None:
    """End this process once ``parent`` is gone: a worker of a process pool blocks on its
    queue forever when its parent is killed (nothing closes the queue), and would keep its
    memory, and its connections to the store, until the machine restarts."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _close_chunk(requests: list[Request], cutoff: datetime | None) -> list[Outcome]:
    """Each model's closed windows, or the error that stopped it (one model's failure fails
    only that model, as in the agent's own process)."""
    source = _SOURCE
    assert source is not None, "the worker was not started"
    source.cutoff = cutoff
    outcomes: list[Outcome] = []
    for model, after, config in requests:
        source.config = config
        try:
            outcomes.append(source.closed_windows(model, after))
        except Exception as exc:
            log.exception("closing the windows of %s failed", model)
            try:  # sent back as it is when it can be (else every model of the chunk would fail)
                pickle.dumps(exc)
            except Exception:
                exc = RuntimeError(f"{type(exc).__name__}: {exc}")
            outcomes.append(exc)
    return outcomes


__all__ = ["PooledSource", "WorkerLost", "poolable"]
