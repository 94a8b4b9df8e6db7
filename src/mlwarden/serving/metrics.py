"""Prometheus metrics of one server: predictions, latency, ingested records, errors.

Each app gets its own ``CollectorRegistry`` so several apps (tests, replicas in one process)
never clash on metric names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServerMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    """The counters and histograms ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.predictions = Counter(
            "mlwarden_predictions",
            "Predictions answered or attempted, by model, version and who served them.",
            ["model", "version", "served_by"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlwarden_prediction_latency_seconds",
            "Time a version took to answer one predict call.",
            ["model", "served_by"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.prediction_errors = Counter(
            "mlwarden_prediction_errors",
            "Predict calls of a version that failed or timed out.",
            ["model", "version", "served_by"],
            registry=self.registry,
        )
        self.records_ingested = Counter(
            "mlwarden_records_ingested",
            "Records received in bulk from models served elsewhere.",
            ["model"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "mlwarden_feedback_labels",
            "Ground-truth labels accepted.",
            ["model"],
            registry=self.registry,
        )
        self.http_errors = Counter(
            "mlwarden_http_errors",
            "Requests answered with an error status, by status code.",
            ["status"],
            registry=self.registry,
        )
        self.shadow_dropped = Counter(
            "mlwarden_shadow_dropped",
            "Shadow predictions skipped because the shadow queue was full.",
            ["model"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The text exposition format Prometheus scrapes."""
        return generate_latest(self.registry)
