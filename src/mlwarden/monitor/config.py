"""The monitor's settings (:class:`MonitorConfig`), apart from the monitor itself.

The policy (``agent.policy``) types and bounds the same knobs and starts from these defaults,
and every server imports the policy at start (its API validates and shows policies, its
operations service checks changes against them). Kept beside the engine, this class brought
the engine's detectors, profiles and metrics (about 3 MB of a gateway-only server's memory,
docs/benchmarks.md, "Gateway overhead") into every server that never runs a monitor;
``monitor.engine`` imports it from here and exports it as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mlwarden.detect.tolerance import DEFAULT_TOLERANCE
from mlwarden.errors import InvalidInput

__all__ = ["MonitorConfig"]


@dataclass
class MonitorConfig:
    """Every knob of the monitor; :meth:`from_mapping` reads a policy's ``detection`` section."""

    drift_alpha: float = 0.01
    drift_wasserstein: float = 0.1
    drift_psi: float = 0.2
    drift_jensen_shannon: float = 0.1
    multivariate: bool = False
    multivariate_auc: float = 0.55
    # The domain classifier runs only on windows where no per-feature test found drift and
    # the moment screen's p-value is below this (``detect.multivariate.MomentScreen``); None
    # runs it on every window.
    multivariate_screen: float | None = 0.1
    prediction_alpha: float = 0.01
    collapse_max_share: float = 0.99
    collapse_std_ratio: float = 0.1
    performance_tolerance: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TOLERANCE))
    min_labels: int = 30
    streaming: str | None = "adwin"
    streaming_min_increase: float = 0.05
    calibration: str = "isotonic"
    # an estimate (no labels) is a drop beyond this many reference chunk standard deviations
    estimated_sigmas: float = 3.0
    # CUSUM threshold of the performance change point, in reference standard deviations;
    # None turns the change point off
    change_threshold: float | None = 5.0
    latency_slo_ms: float | None = None
    latency_ratio: float = 1.5
    # a p99 ratio counts only with the median this many times the baseline's (0: off)
    latency_median_ratio: float = 0.0
    error_min_increase: float = 0.01
    throughput_ratio: float = 0.5
    max_delay_s: float | None = None
    anomaly: bool = True
    anomaly_min_history: int = 30
    rules: list[dict[str, Any]] = field(default_factory=list)
    # windows of history the performance change point keeps
    keep_windows: int = 50
    # recent windows held for late labels (``Monitor.add_labels``): each holds its records'
    # ids, outputs and labels, about 0.15 MB for 1,000 records (docs/benchmarks.md, "A
    # fleet"); 0 holds none (the agent, which reads a window's labels from the store when it
    # closes and never re-scores it)
    late_label_windows: int = 50
    confidence: float = 0.95
    bootstrap_resamples: int = 200

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> tuple[MonitorConfig, list[str]]:
        """Build from a mapping; returns the config and the keys it did not know (ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        values = {k: v for k, v in data.items() if k in known}
        if "performance_tolerance" in values:
            values["performance_tolerance"] = {
                **DEFAULT_TOLERANCE,
                **dict(values["performance_tolerance"]),
            }
        try:
            return cls(**values), unknown
        except TypeError as exc:
            raise InvalidInput(f"invalid detection settings: {exc}") from exc
