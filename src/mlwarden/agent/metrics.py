"""The fleet's health as Prometheus gauges, read from the store each time ``/metrics`` is scraped.

The server's own counters (``serving.metrics``) say what the gateway did; these say what the
monitor and the agent know, so one scrape feeds a Grafana board and alert rules:

* ``mlwarden_model_signal{model, signal}``: the last closed window's performance (measured and
  estimated), latency, error rate, throughput and arrival delay;
* ``mlwarden_feature_drift{model, feature}`` and ``mlwarden_feature_null_rate{model, feature}``:
  the last window's drift score and null rate per feature;
* ``mlwarden_model_last_window{model}`` and ``..._timestamp_seconds``: how far monitoring got;
* ``mlwarden_incidents{model, state, severity}``: incidents the agent is on, and escalated
  ones waiting on a human;
* ``mlwarden_agent_actions{model, kind, state}`` and ``mlwarden_approvals_pending{model}``.

The store reads them in one go (``AgentRepo.fleet_counts``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mlwarden.clock import as_utc
from mlwarden.domain import IncidentState
from mlwarden.errors import ServiceUnavailable
from mlwarden.store.incidents import OPEN_STATES, AgentRepo
from mlwarden.store.repository import Store

# the signals of a window worth a time series of their own (per-feature ones are separate)
MODEL_SIGNALS = (
    "accuracy",
    "f1",
    "precision",
    "recall",
    "roc_auc",
    "log_loss",
    "rmse",
    "mae",
    "r2",
    "estimated_accuracy",
    "estimated_f1",
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "throughput_per_s",
    "delay_p95_s",
    "n_records",
    "n_labelled",
)
# the agent's open states, and escalated ones: closed for the agent, waiting on a human
UNSETTLED_STATES = (*OPEN_STATES, IncidentState.ESCALATED)
log = logging.getLogger("mlwarden.metrics")
# ``drift.<statistic>.<feature>`` series; ``drift.<feature>`` is the effect the detector judged
_PER_STATISTIC = ("wasserstein_std", "psi", "ks", "jensen_shannon")


class FleetCollector(Collector):
    """A Prometheus collector over ``store``: register it on a ``CollectorRegistry``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # the names only: registering must not query a database that may not be up yet
        yield from self._build([], [], [], [], {})
        yield _up(None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            counts = AgentRepo(self.store).fleet_counts(UNSETTLED_STATES)
        except ServiceUnavailable:
            # the gateway's counters must still be scraped while the database is away
            log.warning("fleet metrics skipped: the database is unreachable", exc_info=True)
            yield _up(0.0)
            return
        yield from self._build(*counts)
        yield _up(1.0)

    @staticmethod
    def _build(
        latest: Sequence[Any],
        incidents: Sequence[Any],
        actions: Sequence[Any],
        pending: Sequence[Any],
        names: dict[int, str],
    ) -> Iterator[GaugeMetricFamily]:
        signal = GaugeMetricFamily(
            "mlwarden_model_signal",
            "The last closed window's value of a model signal.",
            labels=["model", "signal"],
        )
        drift = GaugeMetricFamily(
            "mlwarden_feature_drift",
            "The last window's drift score of a feature (normalised; 0 = like the reference).",
            labels=["model", "feature"],
        )
        nulls = GaugeMetricFamily(
            "mlwarden_feature_null_rate",
            "The last window's share of null values of a feature.",
            labels=["model", "feature"],
        )
        window = GaugeMetricFamily(
            "mlwarden_model_last_window", "Index of the last closed window.", labels=["model"]
        )
        window_time = GaugeMetricFamily(
            "mlwarden_model_last_window_timestamp_seconds",
            "When the last closed window ended (unix seconds).",
            labels=["model"],
        )
        seen: set[int] = set()
        for model_id, number, ts, name, value in latest:
            model = names.get(model_id)
            if model is None:
                continue
            if model_id not in seen:
                seen.add(model_id)
                window.add_metric([model], number)
                window_time.add_metric([model], as_utc(ts).timestamp())
            if value is None:
                continue
            if name in MODEL_SIGNALS:
                signal.add_metric([model, name], value)
            elif name.startswith("drift.") and name.split(".")[1] not in _PER_STATISTIC:
                drift.add_metric([model, name.split(".", 1)[1]], value)
            elif name.startswith("null_rate."):
                nulls.add_metric([model, name.split(".", 1)[1]], value)
        yield from (signal, drift, nulls, window, window_time)

        yield _counted(
            "mlwarden_incidents",
            "Incidents open, being acted on or verified, or escalated, by state and severity.",
            ["state", "severity"],
            incidents,
            names,
        )
        yield _counted(
            "mlwarden_agent_actions",
            "Actions in the agent's journal, by kind and state.",
            ["kind", "state"],
            actions,
            names,
        )
        yield _counted(
            "mlwarden_approvals_pending",
            "Actions waiting for an operator's approval.",
            [],
            pending,
            names,
        )


def _counted(
    name: str, documentation: str, labels: list[str], rows: Sequence[Any], names: dict[int, str]
) -> GaugeMetricFamily:
    """A gauge from grouped ``(model_id, *labels, count)`` rows, labelled by model name."""
    family = GaugeMetricFamily(name, documentation, labels=["model", *labels])
    for model_id, *values, count in rows:
        if model_id in names:
            family.add_metric([names[model_id], *values], count)
    return family


def _up(value: float | None) -> GaugeMetricFamily:
    up = GaugeMetricFamily(
        "mlwarden_fleet_metrics_up",
        "1 when the monitor and agent gauges could be read from the store, else 0.",
    )
    if value is not None:
        up.add_metric([], value)
    return up


__all__ = ["MODEL_SIGNALS", "FleetCollector"]
