"""Before labels, an estimated drop is a finding: on a slice of NannyML's car loan dataset.

The data is NannyML's synthetic car loan set (``bench/data/nannyml/PROVENANCE.md``): a model's
scores on a reference period and on an analysis period whose accuracy falls from its sixth
chunk of 5,000 on (realized 0.94 -> 0.91).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlwarden.domain import FindingKind
from mlwarden.monitor.engine import Monitor, MonitorConfig, WindowResult

DATA = Path(__file__).resolve().parents[2] / "bench" / "data" / "nannyml" / "car_loan.parquet"
CHUNK = 5000
PERFORMANCE = ("concept.estimated_drop", "concept.performance_change", "concept.performance_drop")


@pytest.fixture(scope="module")
def car_loan() -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    frame = pd.read_parquet(DATA)
    frame["id"] = [f"r{i}" for i in range(len(frame))]
    reference = frame[frame["period"] == "reference"].drop(columns="period")
    analysis = frame[frame["period"] == "analysis"].drop(columns="period")
    # two more reference chunks, one healthy analysis chunk, two dropped ones
    windows = [
        reference.iloc[10_000:15_000],
        reference.iloc[15_000:20_000],
        analysis.iloc[0:5000],
        analysis.iloc[25_000:30_000],
        analysis.iloc[30_000:35_000],
    ]
    return reference.iloc[:10_000], windows


def _performance(result: WindowResult) -> list:
    return [f for f in result.findings if f.detector in PERFORMANCE]


def test_estimated_drop_is_a_finding_and_the_reference_period_raises_none(
    car_loan: tuple[pd.DataFrame, list[pd.DataFrame]],
) -> None:
    reference, windows = car_loan
    monitor = Monitor(reference, config=MonitorConfig(anomaly=False))
    results = [monitor.process(w.drop(columns="label"), index=i) for i, w in enumerate(windows)]
    assert [bool(_performance(r)) for r in results] == [False, False, False, True, True]
    for result in results[3:]:
        drop = next(f for f in result.findings if f.detector == "concept.estimated_drop")
        assert drop.evidence["estimated"] is True and drop.evidence["metric"] == "accuracy"
        # the realized accuracy of these chunks is 0.91-0.92 against 0.94 on the reference
        assert 0.90 < drop.evidence["value"] < 0.93 < drop.evidence["reference"]
        assert drop.evidence["value"] < drop.evidence["limit"]
        assert drop.evidence["ci_low"] < drop.evidence["value"] < drop.evidence["ci_high"]
        assert drop.evidence["performance_drop"] == pytest.approx(drop.score)
        # the inputs moved too, so the drop is data drift with impact, as a measured one is
        assert drop.kind is FindingKind.DATA_DRIFT and drop.evidence["impact"]
        change = next(f for f in result.findings if f.detector == "concept.performance_change")
        assert change.evidence["change_window"] == 3 and change.evidence["estimated"] is True
    signals = results[3].signals
    assert signals["estimated_roc_auc"] is not None
    assert signals["estimated_roc_auc_ci_low"] < signals["estimated_roc_auc"]
    assert signals["accuracy"] is None  # nothing was measured


def test_late_labels_replace_the_estimate_with_the_measured_drop(
    car_loan: tuple[pd.DataFrame, list[pd.DataFrame]],
) -> None:
    reference, windows = car_loan
    monitor = Monitor(reference, config=MonitorConfig(anomaly=False))
    for i, window in enumerate(windows):
        monitor.process(window.drop(columns="label"), index=i)
    labels = dict(zip(windows[3]["id"], windows[3]["label"], strict=True))
    [updated] = monitor.add_labels(labels)
    detectors = {f.detector for f in updated.findings}
    assert "concept.estimated_drop" not in detectors
    assert "concept.performance_drop" in detectors
    change = next(f for f in updated.findings if f.detector == "concept.performance_change")
    assert change.evidence["estimated"] is False and change.evidence["change_window"] == 3
