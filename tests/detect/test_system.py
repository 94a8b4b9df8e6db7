"""System detectors: latency vs SLO and baseline, error spikes, throughput, late data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from mlwarden.detect.system import (
    SystemBaseline,
    SystemThresholds,
    detect_system,
    error_mask,
    silence_finding,
    system_signals,
)
from mlwarden.domain import FindingKind

RNG = np.random.default_rng(0)


def _latency(n: int, scale: float = 1.0) -> np.ndarray:
    return RNG.lognormal(3.0, 0.4, n) * scale


def _stamps(n: int, every_s: float, start: float = 0.0) -> np.ndarray:
    return start + np.arange(n) * every_s


BASE = SystemBaseline.from_arrays(_latency(5000), np.zeros(5000), _stamps(5000, 1.0))


def test_clean_windows_raise_nothing() -> None:
    alarms = 0
    for w in range(100):
        errors = RNG.random(1000) < 0.002
        sig = system_signals(_latency(1000), errors, _stamps(1000, 1.0, 10_000 + 1000 * w))
        alarms += bool(detect_system(sig, BASE, SystemThresholds(latency_slo_ms=500), w))
    assert alarms == 0


def test_latency_spike_against_baseline_and_slo() -> None:
    sig = system_signals(_latency(1000, 3.0), np.zeros(1000))
    findings = detect_system(sig, BASE, SystemThresholds(latency_slo_ms=80), window=5)
    stats = {f.statistic: f for f in findings}
    assert set(stats) == {"latency_p99_ms", "latency_p99_ratio"}
    ratio = stats["latency_p99_ratio"]
    assert ratio.kind is FindingKind.LATENCY and ratio.window == 5
    assert 2.5 < ratio.score < 3.5
    assert "x the baseline" in ratio.message and "ms" in ratio.message


def test_a_few_stalled_calls_are_no_latency_spike_where_the_median_must_move_too() -> None:
    """A 60-call window with three calls stalled by a busy host: its p99 is several times the
    baseline's, its median is not. With ``latency_median_ratio`` (probing) that is no spike; a
    real one moves both."""
    stalled = _latency(60)
    stalled[:3] = 400.0
    sig = system_signals(stalled, np.zeros(60))
    assert sig["latency_p99_ms"] > 5 * BASE.latency_p99_ms  # type: ignore[operator]
    probing = SystemThresholds(latency_ratio=3.0, latency_median_ratio=1.5, min_rows=50)
    assert detect_system(sig, BASE, probing, window=1) == []
    anywhere = SystemThresholds(latency_ratio=3.0, min_rows=50)
    assert [f.statistic for f in detect_system(sig, BASE, anywhere, window=1)] == [
        "latency_p99_ratio"
    ]
    slow = system_signals(_latency(60, 10.0), np.zeros(60))
    found = detect_system(slow, BASE, probing, window=2)
    assert [f.statistic for f in found] == ["latency_p99_ratio"]


def test_error_rate_spike_uses_binomial_test_and_minimum_increase() -> None:
    base = SystemBaseline(error_rate=0.01, n=10_000)
    spike = system_signals(errors=RNG.random(1000) < 0.05)
    found = detect_system(spike, base, SystemThresholds(), window=1)
    assert [f.kind for f in found] == [FindingKind.ERROR_RATE]
    assert found[0].p_value is not None and found[0].p_value < 1e-4
    # A tiny increase on a huge window is significant but below the minimum absolute increase.
    tiny = system_signals(errors=RNG.random(1_000_000) < 0.012)
    assert detect_system(tiny, base, SystemThresholds(), window=2) == []


def test_throughput_drop_and_late_data() -> None:
    base = SystemBaseline.from_arrays(
        timestamps=_stamps(2000, 1.0), received_at=_stamps(2000, 1.0) + 2.0
    )
    slow = system_signals(timestamps=_stamps(1000, 5.0), received_at=_stamps(1000, 5.0) + 2.0)
    late = system_signals(timestamps=_stamps(1000, 1.0), received_at=_stamps(1000, 1.0) + 900)
    assert [f.statistic for f in detect_system(slow, base, SystemThresholds())] == [
        "throughput_ratio"
    ]
    fresh = detect_system(late, base, SystemThresholds())
    assert [f.kind for f in fresh] == [FindingKind.FRESHNESS]
    assert "p95 delay 900 s" in fresh[0].message


def test_silence_and_error_column_spellings() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert silence_finding(now - timedelta(minutes=5), now, 600) is None
    found = silence_finding(now - timedelta(hours=2), now, 600)
    assert found is not None and found.kind is FindingKind.FRESHNESS and found.score == 7200
    mask = error_mask(["", None, "timeout", 0, 1, True, False, float("nan"), "false"])
    assert mask.tolist() == [False, False, True, False, True, True, False, False, False]
    # An all-text field (the usual case) is judged per distinct message: same verdicts.
    text = np.array(
        ["", " OK ", "Null", "timeout", "0", "False", "nan", "", "timeout"], dtype=object
    )
    assert error_mask(text).tolist() == [
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        False,
        True,
    ]


def test_bad_values_are_ignored_not_nan() -> None:
    sig = system_signals(latency_ms=["abc", None, float("nan"), 12.0], errors=[])
    assert sig["latency_p99_ms"] == 12.0
    assert sig["error_rate"] is None
    assert system_signals()["n_records"] == 0.0
