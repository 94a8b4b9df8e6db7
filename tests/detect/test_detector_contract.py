"""Every registered detector keeps the same contract, checked on the same windows of the bundled
electricity data (the way River's and scikit-learn's common checks run every estimator): silent on
a clean window, a complete finding of its declared kind on a window broken for that kind, the same
answer twice, and no exception on an empty window or on columns of NaN only. A detector added
later is covered by registering itself: this file names none. The records carry one free-text
feature too, a passenger's name from the bundled Titanic data, so that text detectors have
text to read and every other detector must leave it alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlwarden.datasets import load
from mlwarden.detect.base import Detector, WindowInputs
from mlwarden.detect.registry import FINDING_KINDS, finding_kinds_table, registered
from mlwarden.detect.system import system_signals
from mlwarden.domain import Finding, FindingKind
from mlwarden.monitor.engine import Monitor, MonitorConfig, sanitize_signals
from mlwarden.stats.profile import Profile

# Every switch on, so that every registered detector is built.
SETTINGS = MonitorConfig(multivariate=True)
REFERENCE_ROWS, WINDOW_ROWS = 4000, 1000
START = pd.Timestamp("2026-01-01")


TITANIC = load("titanic")


def _records(features: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Records as the monitor stores them: the features (and a passenger's name drawn at
    random), a model's answer and the service's measurements, all drawn the same way for the
    reference and a clean window."""
    rng = np.random.default_rng(seed)
    frame = features.reset_index(drop=True).copy()
    frame["passenger"] = rng.choice(TITANIC["Name"].to_numpy(), size=len(frame))
    score = 1 / (1 + np.exp(-8 * (frame["nswprice"] - frame["nswprice"].median())))
    frame["score"] = score
    frame["prediction"] = (score > 0.5).astype(int)
    frame["latency_ms"] = rng.lognormal(np.log(20), 0.3, len(frame))
    frame["error"] = None
    stamps = START + pd.to_timedelta(np.arange(len(frame)) * 1.0, unit="s")
    frame["timestamp"] = stamps
    frame["received_at"] = stamps + pd.to_timedelta(rng.uniform(0.1, 2.0, len(frame)), unit="s")
    return frame


@pytest.fixture(scope="module")
def electricity() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference and a clean window drawn apart at random from the same two months."""
    rows = load("electricity").drop(columns=["target"]).iloc[20_000:25_000]
    shuffled = rows.sample(frac=1.0, random_state=0)
    reference = _records(shuffled.iloc[:REFERENCE_ROWS], seed=1)
    window = _records(shuffled.iloc[REFERENCE_ROWS : REFERENCE_ROWS + WINDOW_ROWS], seed=2)
    return reference, window


@pytest.fixture(scope="module")
def monitor(electricity: tuple[pd.DataFrame, pd.DataFrame]) -> Monitor:
    return Monitor(electricity[0], config=SETTINGS)


def _shift_inputs(w: pd.DataFrame) -> pd.DataFrame:
    return w.assign(nswdemand=w["nswdemand"] + 0.2)


def _null_burst(w: pd.DataFrame) -> pd.DataFrame:
    out = w.copy()
    out.loc[out.index[: len(out) * 3 // 10], "nswdemand"] = np.nan
    return out


def _blank_text(w: pd.DataFrame) -> pd.DataFrame:
    out = w.copy()
    out.loc[out.index[: len(out) * 3 // 10], "passenger"] = ""
    return out


def _text_from_another_field(w: pd.DataFrame) -> pd.DataFrame:
    """The name field filled with ticket numbers ("A/5 21171"): real text of another kind."""
    tickets = TITANIC["Ticket"].to_numpy()
    return w.assign(passenger=tickets[np.arange(len(w)) % len(tickets)])


def _stuck_sensor(w: pd.DataFrame) -> pd.DataFrame:
    return w.assign(nswdemand=0.5)


def _collapsed_outputs(w: pd.DataFrame) -> pd.DataFrame:
    return w.assign(prediction=1, score=0.99)


def _slow(w: pd.DataFrame) -> pd.DataFrame:
    return w.assign(latency_ms=w["latency_ms"] * 4)


def _failing(w: pd.DataFrame) -> pd.DataFrame:
    errors = np.where(np.arange(len(w)) % 10 == 0, "TimeoutError", None)
    return w.assign(error=errors)


def _late(w: pd.DataFrame) -> pd.DataFrame:
    return w.assign(received_at=w["received_at"] + pd.Timedelta(hours=1))


def _slow_traffic(w: pd.DataFrame) -> pd.DataFrame:
    stamps = START + pd.to_timedelta(np.arange(len(w)) * 10.0, unit="s")
    return w.assign(timestamp=stamps, received_at=stamps + pd.Timedelta(seconds=1))


# Broken windows per finding kind a profile-and-signals detector can report; a detector of a
# kind must report it on at least one of them. Concept drift needs labels over time
# (``detect.concept``, ``detect.performance_change``), which no registered detector reads yet.
FAULTS: dict[FindingKind, list[Callable[[pd.DataFrame], pd.DataFrame]]] = {
    FindingKind.DATA_DRIFT: [_shift_inputs, _text_from_another_field],
    FindingKind.DATA_QUALITY: [_null_burst, _stuck_sensor, _blank_text],
    FindingKind.PREDICTION_DRIFT: [_collapsed_outputs],
    FindingKind.LATENCY: [_slow],
    FindingKind.ERROR_RATE: [_failing],
    FindingKind.FRESHNESS: [_late],
    FindingKind.ANOMALY: [_slow_traffic],
}

DETECTORS = registered()


def _built(monitor: Monitor, cls: type[Detector]) -> Detector:
    found = [d for d in monitor.detectors if type(d) is cls]
    assert found, f"{cls.name} is registered but {SETTINGS} does not turn it on: turn it on here"
    return found[0]


def _run(
    monitor: Monitor, detector: Detector, window: pd.DataFrame, index: int = 3
) -> list[Finding]:
    """The detector alone on one window, given what the monitor would give it."""
    profile = Profile.from_data(window, monitor.layout)
    signals = {"n_records": float(len(window)), **system_signals(*monitor.system_columns(window))}
    inputs = WindowInputs(
        monitor.reference, profile, index, window_frame=window, signals=sanitize_signals(signals)
    )
    output = detector.run(inputs)
    assert all(isinstance(f, Finding) for f in output.findings)
    return output.findings


def _dumped(findings: list[Finding]) -> list[dict[str, object]]:
    return [f.model_dump(mode="json") for f in findings]


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda cls: cls.name)
def test_a_registered_detector_declares_described_kinds_and_known_settings(
    cls: type[Detector],
) -> None:
    assert cls.kinds and all(kind in FINDING_KINDS for kind in cls.kinds)
    assert set(cls.settings) <= set(asdict(SETTINGS)), "settings must be MonitorConfig fields"
    assert [c.name for c in DETECTORS].count(cls.name) == 1


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda cls: cls.name)
def test_a_registered_detector_finds_nothing_on_a_clean_window(
    cls: type[Detector], monitor: Monitor, electricity: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    assert _run(monitor, _built(monitor, cls), electricity[1]) == []


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda cls: cls.name)
def test_a_registered_detector_reports_each_declared_kind_on_a_window_broken_for_it(
    cls: type[Detector], monitor: Monitor, electricity: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    detector = _built(monitor, cls)
    for kind in cls.kinds:
        assert kind in FAULTS, f"no broken window for {kind}: add one to FAULTS"
        findings = [
            f
            for fault in FAULTS[kind]
            for f in _run(monitor, detector, fault(electricity[1]))
            if f.kind is kind
        ]
        assert findings, f"{cls.name} found no {kind} on any window broken for it"
        for finding in findings:
            assert finding.statistic and finding.message and finding.window == 3
            assert finding.detector.split(".")[0] == cls.name
            assert np.isfinite(finding.score) and np.isfinite(finding.threshold)
            if kind in (FindingKind.DATA_DRIFT, FindingKind.DATA_QUALITY):
                assert finding.features, "a finding about inputs names its features"


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda cls: cls.name)
def test_a_registered_detector_gives_the_same_answer_twice(
    cls: type[Detector], monitor: Monitor, electricity: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    detector = _built(monitor, cls)
    rebuilt = cls.from_settings(asdict(SETTINGS), monitor._context)
    assert rebuilt is not None
    for fault in [fault for kind in cls.kinds for fault in FAULTS[kind]]:
        window = fault(electricity[1])
        first = _dumped(_run(monitor, detector, window))
        assert first == _dumped(_run(monitor, detector, window))
        assert first == _dumped(_run(monitor, rebuilt, window))


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda cls: cls.name)
def test_a_registered_detector_survives_an_empty_window_and_columns_of_nan_only(
    cls: type[Detector], monitor: Monitor, electricity: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    detector = _built(monitor, cls)
    clean = electricity[1]
    assert _run(monitor, detector, clean.iloc[0:0]) == []
    nan_only = clean.assign(**{c: np.nan for c in ("nswprice", "nswdemand", "score", "latency_ms")})
    findings = _run(monitor, detector, nan_only)
    assert all(f.kind in cls.kinds for f in findings)


def test_every_finding_kind_is_described_once_and_the_architecture_doc_shows_the_same_table() -> (
    None
):
    assert list(FINDING_KINDS) == list(FindingKind)
    doc = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text(encoding="utf-8")
    shown = doc.split("<!-- finding-kinds:start -->\n")[1].split("<!-- finding-kinds:end -->")[0]
    assert shown.strip() == finding_kinds_table(), (
        "docs/architecture.md's finding kinds differ from detect.registry: paste "
        "finding_kinds_table() between its finding-kinds markers"
    )
