"""The domain classifier finds a joint change no per-feature test sees, and stays quiet on
clean windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mlwarden.detect.drift import FeatureDriftDetector
from mlwarden.detect.multivariate import DomainClassifierDetector, MomentScreen
from mlwarden.domain import FindingKind
from mlwarden.errors import InvalidInput
from mlwarden.stats.profile import Profile
from mlwarden.stats.reference import build_reference


def _frame(n: int, rng: np.random.Generator, corr: float = 0.0) -> pd.DataFrame:
    ab = rng.multivariate_normal([0.0, 0.0], [[1.0, corr], [corr, 1.0]], n)
    return pd.DataFrame(
        {
            "a": ab[:, 0],
            "b": ab[:, 1],
            "c": rng.exponential(1.0, n),
            "segment": rng.choice(["x", "y", "z"], n),
        }
    )


REF = _frame(3000, np.random.default_rng(0))


def test_correlation_change_caught_by_domain_classifier_only() -> None:
    window = _frame(1000, np.random.default_rng(1), corr=0.8)
    reference = build_reference(REF)
    per_feature = FeatureDriftDetector().compare(
        reference, Profile.from_data(window, reference.layout)
    )
    assert per_feature.drifted == []  # every marginal is unchanged
    findings = DomainClassifierDetector().detect_samples(REF, window, window_index=4)
    assert len(findings) == 1
    finding = findings[0]
    assert finding.kind is FindingKind.DATA_DRIFT and finding.window == 4
    assert finding.statistic == "domain_auc" and finding.score >= 0.6
    assert finding.p_value is not None and finding.p_value < 1e-6
    assert set(finding.features) == {"a", "b", "c", "segment"}
    # No single feature separates the samples: the change is in the joint distribution.
    assert max(finding.evidence["feature_auc"].values()) < 0.56
    assert "AUC" in finding.message and "1,000 rows" in finding.message


def test_clean_windows_are_not_flagged() -> None:
    detector = DomainClassifierDetector()
    results = [
        detector.compare(REF, _frame(1000, np.random.default_rng(seed))) for seed in (2, 3, 4)
    ]
    assert [r.status for r in results] == ["stable"] * 3
    assert all(abs(r.auc - 0.5) < 0.05 for r in results)


def test_unseen_category_and_polars_input() -> None:
    window = _frame(600, np.random.default_rng(5))
    window.loc[window.index[:300], "segment"] = "new"
    result = DomainClassifierDetector().compare(pl.from_pandas(REF), pl.from_pandas(window))
    assert result.drifted and result.importance["segment"] > 0.6


def test_small_or_disjoint_inputs() -> None:
    detector = DomainClassifierDetector()
    tiny = detector.compare(REF, _frame(10, np.random.default_rng(6)))
    assert tiny.status == "insufficient_data" and tiny.auc == 0.5
    with pytest.raises(InvalidInput, match="share no feature"):
        detector.compare(REF, pd.DataFrame({"other": np.arange(100.0)}))
    with pytest.raises(InvalidInput):
        DomainClassifierDetector(auc_threshold=0.3)
    # Nulls and non-numeric strings in the window are encoded, not fatal.
    messy = _frame(300, np.random.default_rng(7)).astype({"a": object})
    messy.loc[messy.index[:20], "a"] = "oops"
    messy.loc[messy.index[20:40], "b"] = np.nan
    assert detector.compare(REF, messy).status in ("stable", "drift")


def test_moment_screen_passes_clean_windows_and_flags_moved_moments() -> None:
    screen = MomentScreen(REF, ["a", "b", "c", "segment"])
    clean = [screen.p_value(_frame(1000, np.random.default_rng(seed))) for seed in range(10, 30)]
    # A gate, not a test: clean windows mostly let the classifier rest (p >= 0.1).
    assert sum(p < 0.1 for p in clean) <= 3
    assert screen.p_value(_frame(1000, np.random.default_rng(8), corr=0.8)) < 1e-6
    moved = _frame(1000, np.random.default_rng(9))
    moved.loc[moved.index[:100], "segment"] = "new"  # an unseen level moves the codes' moments
    assert screen.p_value(moved) < 1e-6
    assert screen.p_value(moved.iloc[:1]) == 1.0  # one row compares nothing
