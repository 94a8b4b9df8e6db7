"""Prometheus metrics of one server: predictions, latency, ingested records, errors.

Each app gets its own ``CollectorRegistry`` so several apps (tests, replicas in one process)
never clash on metric names.

Across processes (``mlwarden serve --workers N``) a process's own counters are only its share:
a scrape answered by one worker would count what that worker saw, so totals would jump between
scrapes and fall N times short. There the server runs prometheus_client's multiprocess mode:
``serve`` gives each start a fresh folder (:func:`fresh_multiprocess_dir`) and names it in
``PROMETHEUS_MULTIPROC_DIR`` before the workers start; each worker's counters and histograms
then write to files of their own there, and whichever worker answers ``/metrics`` sums every
process's files (``MultiProcessCollector``), dead workers' included, so totals stay monotonic.
Store-derived gauges (``agent.metrics``) are not per-process values: the answering worker reads
them from the store once per scrape.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MULTIPROC_ENV",
    "ServerMetrics",
    "fresh_multiprocess_dir",
    "multiprocess_dir",
]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# prometheus_client reads it once, when it is first imported: it must be set before the
# worker processes start
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# one folder per ``serve`` start under the data dir: ``<data dir>/prometheus/serve-<pid>``
_FOLDER = "prometheus"
_PREFIX = "serve-"


def multiprocess_dir() -> Path | None:
    """The folder this process's metric values live in, or None when they live in memory.

    Asks prometheus_client, not only the environment: it chose file-backed values when it was
    imported, and a variable set after that changes nothing in this process.
    """
    folder = os.environ.get(MULTIPROC_ENV)
    if folder is None or not getattr(values.ValueClass, "_multiprocess", False):
        return None
    return Path(folder)


def fresh_multiprocess_dir(data_dir: Path) -> Path:
    """An empty folder for the metric files of one ``serve`` start, and the folders of earlier
    starts whose process is gone removed (a fresh start must not add their counts)."""
    parent = data_dir / _FOLDER
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.glob(f"{_PREFIX}*"):
        pid = old.name.removeprefix(_PREFIX)
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    folder = parent / f"{_PREFIX}{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this start's folder, left by a process that had the same id
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class ServerMetrics:
    """The counters and histograms ``/metrics`` exposes.

    ``registry`` is what a scrape renders; more collectors may be registered on it. In
    multiprocess mode it holds a ``MultiProcessCollector`` over every process's files instead of
    this process's metrics, which then belong to no registry (one ``ServerMetrics`` per worker
    process: two in one process would overwrite each other's files).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = multiprocess_dir()
        own: CollectorRegistry | None = self.registry
        if self.multiprocess_dir is not None:
            MultiProcessCollector(self.registry, path=str(self.multiprocess_dir))
            own = None
        self.predictions = Counter(
            "mlwarden_predictions",
            "Predictions answered or attempted, by model, version and who served them.",
            ["model", "version", "served_by"],
            registry=own,
        )
        self.latency = Histogram(
            "mlwarden_prediction_latency_seconds",
            "Time a version took to answer one predict call.",
            ["model", "served_by"],
            buckets=_LATENCY_BUCKETS,
            registry=own,
        )
        self.prediction_errors = Counter(
            "mlwarden_prediction_errors",
            "Predict calls of a version that failed or timed out.",
            ["model", "version", "served_by"],
            registry=own,
        )
        self.records_ingested = Counter(
            "mlwarden_records_ingested",
            "Records received in bulk from models served elsewhere.",
            ["model"],
            registry=own,
        )
        self.feedback = Counter(
            "mlwarden_feedback_labels",
            "Ground-truth labels accepted.",
            ["model"],
            registry=own,
        )
        self.http_errors = Counter(
            "mlwarden_http_errors",
            "Requests answered with an error status, by status code.",
            ["status"],
            registry=own,
        )
        self.shadow_dropped = Counter(
            "mlwarden_shadow_dropped",
            "Shadow predictions skipped because the shadow queue was full.",
            ["model"],
            registry=own,
        )

    def render(self) -> bytes:
        """The text exposition format Prometheus scrapes."""
        return generate_latest(self.registry)

    def close(self) -> None:
        """Bookkeeping when this worker process stops: in multiprocess mode, its live gauges'
        files go (its counters stay in the sums, so totals never fall)."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), str(self.multiprocess_dir))
