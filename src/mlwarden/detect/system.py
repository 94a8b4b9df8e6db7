"""System health of a model's serving path: latency, errors, throughput and late data.

Methods:

- Latency: the window's p99 against an absolute SLO, and against the reference p99 as a ratio
  (a tail that grew 1.5x is a regression even inside the SLO). Percentiles need enough rows to
  mean anything: below ``min_rows`` the window is not judged.
- Error rate: a one-sided exact binomial test (Clopper & Pearson, 1934; scipy.stats.binomtest)
  of the window's error count against the baseline rate, *and* a minimum absolute increase, so
  that neither a tiny blip on a huge window nor a 1-in-50 window on a tiny baseline alarms.
- Throughput: records per second against the baseline, flagged when it falls under a ratio.
- Freshness: arrival delay ``received_at - timestamp`` (p95) against a maximum, and silence: no
  record for longer than expected (:func:`silence_finding`).

>>> import numpy as np
>>> base = SystemBaseline.from_arrays(latency_ms=np.full(1000, 20.0), errors=np.zeros(1000))
>>> sig = system_signals(latency_ms=np.full(1000, 80.0), errors=np.zeros(1000))
>>> [f.statistic for f in detect_system(sig, base, SystemThresholds(), window=3)]
['latency_p99_ratio']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mlwarden.detect.base import (
    Detector,
    DetectorContext,
    DetectorOutput,
    Input,
    Stage,
    WindowInputs,
)
from mlwarden.detect.registry import register
from mlwarden.domain import Finding, FindingKind
from mlwarden.stats.performance import to_float_array

__all__ = [
    "SystemBaseline",
    "SystemDetector",
    "SystemThresholds",
    "detect_system",
    "error_mask",
    "silence_finding",
    "system_signals",
]


@dataclass
class SystemThresholds:
    """Thresholds of the system detectors; every one can be set per model in a policy."""

    latency_slo_ms: float | None = None
    latency_ratio: float = 1.5
    # A p99 going 2 ms -> 4 ms is a 2x ratio nobody should be paged for.
    latency_min_increase_ms: float = 5.0
    # with a ratio above 0, a p99 ratio counts only when the window's median latency is this
    # many times the baseline's too: a window of a few dozen calls has for p99 about its
    # slowest one, and one stall of a busy host (a prober's) is no latency spike
    latency_median_ratio: float = 0.0
    min_rows: int = 50
    error_alpha: float = 1e-4
    error_min_increase: float = 0.01
    throughput_ratio: float = 0.5
    max_delay_s: float | None = None
    delay_ratio: float = 3.0
    delay_min_increase_s: float = 60.0


@dataclass
class SystemBaseline:
    """Reference values of the system signals, measured once on the reference records."""

    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    error_rate: float | None = None
    throughput_per_s: float | None = None
    delay_p95_s: float | None = None
    n: int = 0

    @classmethod
    def from_arrays(
        cls,
        latency_ms: Any = None,
        errors: Any = None,
        timestamps: Any = None,
        received_at: Any = None,
    ) -> SystemBaseline:
        s = system_signals(latency_ms, errors, timestamps, received_at)
        return cls(
            latency_p50_ms=s.get("latency_p50_ms"),
            latency_p99_ms=s.get("latency_p99_ms"),
            error_rate=s.get("error_rate"),
            throughput_per_s=s.get("throughput_per_s"),
            delay_p95_s=s.get("delay_p95_s"),
            n=int(s.get("n_records") or 0),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def error_mask(values: Any) -> np.ndarray:
    """True where a record failed: a non-empty error message, True, or a non-zero number."""
    if values is None:
        return np.zeros(0, dtype=bool)
    arr = np.asarray(values, dtype=object)
    if len(arr) and pd.api.types.infer_dtype(arr, skipna=False) == "string":
        # The usual error field: text, mostly empty. Judge each distinct message once.
        distinct, where = np.unique(arr.astype(str), return_inverse=True)
        verdicts = np.array([_failed(v) for v in distinct.tolist()], dtype=bool)
        return verdicts[where.reshape(-1)]
    return np.array([_failed(v) for v in arr.tolist()], dtype=bool)


def _failed(v: Any) -> bool:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return False
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | float | np.integer | np.floating):
        return bool(v != 0)
    text = str(v).strip().lower()
    return text not in {"", "0", "false", "none", "nan", "null", "ok"}


def _finite(values: Any) -> np.ndarray:
    if values is None:
        return np.zeros(0)
    out = to_float_array(list(values))
    return np.asarray(out[np.isfinite(out)])


def _seconds(values: Any) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values)
    if len(arr) == 0:
        return np.zeros(0)
    if np.issubdtype(arr.dtype, np.datetime64):
        secs = arr.astype("datetime64[ns]").astype("int64").astype(float) / 1e9
        secs[np.isnat(arr)] = np.nan
        return secs
    out = np.full(len(arr), np.nan)
    for i, v in enumerate(arr):
        if isinstance(v, datetime):
            out[i] = v.timestamp()
        elif isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool):
            out[i] = float(v)
    return out


def system_signals(
    latency_ms: Any = None,
    errors: Any = None,
    timestamps: Any = None,
    received_at: Any = None,
    min_rows: int = 1,
) -> dict[str, float | None]:
    """Latency percentiles, error rate, throughput and arrival delay of one set of records.

    ``timestamps`` / ``received_at`` are datetime64 arrays, datetimes or epoch seconds.
    """
    out: dict[str, float | None] = {}
    lat = _finite(latency_ms)
    n_lat = len(lat)
    for q, name in ((50, "latency_p50_ms"), (95, "latency_p95_ms"), (99, "latency_p99_ms")):
        out[name] = float(np.percentile(lat, q)) if n_lat >= min_rows and n_lat else None
    if errors is not None:
        mask = error_mask(errors)
        out["error_rate"] = float(mask.mean()) if len(mask) else None
        out["error_count"] = float(mask.sum())
    n = max(len(np.asarray(errors, dtype=object)) if errors is not None else 0, n_lat)
    ts = _seconds(timestamps)
    if ts is not None:
        n = max(n, len(ts))
        good = ts[np.isfinite(ts)]
        span = float(good.max() - good.min()) if len(good) >= 2 else 0.0
        out["throughput_per_s"] = (len(good) - 1) / span if span > 0 else None
        recv = _seconds(received_at)
        if recv is not None and len(recv) == len(ts):
            delay = recv - ts
            delay = delay[np.isfinite(delay)]
            out["delay_p50_s"] = float(np.percentile(delay, 50)) if len(delay) else None
            out["delay_p95_s"] = float(np.percentile(delay, 95)) if len(delay) else None
    out["n_records"] = float(n)
    return out


def _finding(
    kind: FindingKind,
    statistic: str,
    score: float,
    threshold: float,
    window: int | None,
    message: str,
    p_value: float | None = None,
    **evidence: Any,
) -> Finding:
    return Finding(
        kind=kind,
        detector=f"system.{statistic}",
        statistic=statistic,
        score=float(score),
        threshold=float(threshold),
        p_value=p_value,
        window=window,
        message=message,
        evidence=evidence,
    )


def _median_moved(signals: Mapping[str, Any], baseline: SystemBaseline, ratio: float) -> bool:
    """Whether the window's median latency is ``ratio`` times the baseline's (always, when
    ``ratio`` is 0: the p99 alone decides)."""
    if ratio <= 0:
        return True
    p50, base = signals.get("latency_p50_ms"), baseline.latency_p50_ms
    return p50 is not None and base is not None and base > 0 and p50 / base >= ratio


def detect_system(
    signals: dict[str, float | None],
    baseline: SystemBaseline,
    thresholds: SystemThresholds,
    window: int | None = None,
) -> list[Finding]:
    """Latency, error-rate, throughput and freshness findings of one window's signals."""
    out: list[Finding] = []
    t = thresholds
    n = int(signals.get("n_records") or 0)
    p99 = signals.get("latency_p99_ms")
    if p99 is not None and n >= t.min_rows:
        if t.latency_slo_ms is not None and p99 > t.latency_slo_ms:
            out.append(
                _finding(
                    FindingKind.LATENCY,
                    "latency_p99_ms",
                    p99,
                    t.latency_slo_ms,
                    window,
                    f"p99 latency {p99:.1f} ms is above the SLO of {t.latency_slo_ms:.1f} ms",
                    p99_ms=p99,
                    slo_ms=t.latency_slo_ms,
                )
            )
        base = baseline.latency_p99_ms
        if base is not None and base > 0:
            ratio = p99 / base
            if (
                ratio > t.latency_ratio
                and p99 - base >= t.latency_min_increase_ms
                and _median_moved(signals, baseline, t.latency_median_ratio)
            ):
                out.append(
                    _finding(
                        FindingKind.LATENCY,
                        "latency_p99_ratio",
                        ratio,
                        t.latency_ratio,
                        window,
                        f"p99 latency {p99:.1f} ms is {ratio:.1f}x the baseline {base:.1f} ms",
                        p99_ms=p99,
                        baseline_p99_ms=base,
                    )
                )
    rate = signals.get("error_rate")
    count = signals.get("error_count")
    if rate is not None and count is not None and n > 0:
        base_rate = baseline.error_rate or 0.0
        if rate >= base_rate + t.error_min_increase:
            # A zero baseline would make any error infinitely unlikely: floor it at 1 in 10,000.
            p = float(
                stats.binomtest(int(count), n, max(base_rate, 1e-4), alternative="greater").pvalue
            )
            if p < t.error_alpha:
                out.append(
                    _finding(
                        FindingKind.ERROR_RATE,
                        "error_rate",
                        rate,
                        base_rate + t.error_min_increase,
                        window,
                        f"error rate {rate:.1%} ({int(count)} of {n}) vs baseline "
                        f"{base_rate:.1%} (binomial p={p:.1e})",
                        p_value=p,
                        baseline=base_rate,
                    )
                )
    thr = signals.get("throughput_per_s")
    if thr is not None and baseline.throughput_per_s and n >= t.min_rows:
        ratio = thr / baseline.throughput_per_s
        if ratio < t.throughput_ratio:
            out.append(
                _finding(
                    FindingKind.ANOMALY,
                    "throughput_ratio",
                    ratio,
                    t.throughput_ratio,
                    window,
                    f"throughput {thr:.2f}/s is {ratio:.0%} of the baseline "
                    f"{baseline.throughput_per_s:.2f}/s",
                    throughput_per_s=thr,
                    baseline=baseline.throughput_per_s,
                )
            )
    delay = signals.get("delay_p95_s")
    if delay is not None:
        limit = t.max_delay_s
        if limit is None and baseline.delay_p95_s is not None:
            limit = max(
                baseline.delay_p95_s * t.delay_ratio, baseline.delay_p95_s + t.delay_min_increase_s
            )
        if limit is not None and delay > limit:
            out.append(
                _finding(
                    FindingKind.FRESHNESS,
                    "delay_p95_s",
                    delay,
                    limit,
                    window,
                    f"data arrives late: p95 delay {delay:.0f} s is above {limit:.0f} s",
                    baseline=baseline.delay_p95_s,
                )
            )
    return out


@register
class SystemDetector(Detector):
    """Latency, error rate, throughput and delay of a window's records against the baseline
    measured on the reference (``detect_system`` on the window's signals)."""

    name = "system"
    kinds = (
        FindingKind.LATENCY,
        FindingKind.ERROR_RATE,
        FindingKind.ANOMALY,
        FindingKind.FRESHNESS,
    )
    stage = Stage.SERVICE
    order = 10
    needs = frozenset({Input.SIGNALS})
    settings = (
        "latency_slo_ms",
        "latency_ratio",
        "latency_median_ratio",
        "error_min_increase",
        "throughput_ratio",
        "max_delay_s",
    )

    def __init__(
        self, thresholds: SystemThresholds | None = None, context: DetectorContext | None = None
    ) -> None:
        self.thresholds = thresholds or SystemThresholds()
        # The baseline is read from the context at each run: the agent re-learns it from
        # production records after the monitor is built.
        self.context = context or DetectorContext()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], context: DetectorContext) -> SystemDetector:
        return cls(
            SystemThresholds(
                latency_slo_ms=settings["latency_slo_ms"],
                latency_ratio=settings["latency_ratio"],
                latency_median_ratio=settings["latency_median_ratio"],
                error_min_increase=settings["error_min_increase"],
                throughput_ratio=settings["throughput_ratio"],
                max_delay_s=settings["max_delay_s"],
            ),
            context,
        )

    def run(self, inputs: WindowInputs) -> DetectorOutput:
        baseline = self.context.system_baseline or SystemBaseline()
        return DetectorOutput(
            detect_system(dict(inputs.signals), baseline, self.thresholds, inputs.index)
        )


def silence_finding(
    last_timestamp: datetime | None, now: datetime, max_silence_s: float, window: int | None = None
) -> Finding | None:
    """A freshness finding when no record arrived for longer than ``max_silence_s``."""
    if last_timestamp is None:
        return None
    silence = (now - last_timestamp).total_seconds()
    if silence <= max_silence_s:
        return None
    return _finding(
        FindingKind.FRESHNESS,
        "silence_s",
        silence,
        max_silence_s,
        window,
        f"no data for {silence:.0f} s (expected at most {max_silence_s:.0f} s)",
        last_timestamp=last_timestamp.isoformat(),
    )
