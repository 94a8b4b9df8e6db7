"""Per-feature drift on data with known answers: synthetic (fixed seeds) and the real
electricity market stream, plus every bad input of the issue."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlwarden.datasets import load
from mlwarden.detect.drift import DriftThresholds, FeatureDriftDetector, _categorical, _numeric
from mlwarden.detect.statistics import holm
from mlwarden.domain import FindingKind
from mlwarden.errors import InvalidInput
from mlwarden.stats.profile import CategoricalStats, NumericStats, Profile, ProfileLayout
from mlwarden.stats.reference import build_reference

LEVELS = [f"lvl{i}" for i in range(12)]
LEVEL_P = np.linspace(1.0, 3.0, 12) / np.linspace(1.0, 3.0, 12).sum()


def _mixed(n: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    """Six features of different families; ``shift`` moves ``normal`` by that many stds."""
    return pd.DataFrame(
        {
            "normal": rng.normal(shift, 1.0, n),
            "lognormal": rng.lognormal(0.0, 0.8, n),
            "uniform": rng.uniform(-3, 3, n),
            "count": rng.poisson(3.0, n).astype(float),
            "bimodal": np.where(rng.random(n) < 0.3, rng.normal(-2, 0.5, n), rng.normal(2, 1, n)),
            "segment": rng.choice(LEVELS, n, p=LEVEL_P),
        }
    )


REFERENCE = build_reference(_mixed(5000, np.random.default_rng(12345)))


def _window(frame: pd.DataFrame) -> Profile:
    return Profile.from_data(frame, REFERENCE.layout)


def _all_finite(report_signals: dict[str, float]) -> bool:
    return all(math.isfinite(v) for v in report_signals.values())


def test_no_drift_on_same_distribution_false_alarm_rate() -> None:
    detector = FeatureDriftDetector()
    alarms = 0
    for seed in range(150):
        report = detector.compare(REFERENCE, _window(_mixed(1000, np.random.default_rng(seed))))
        assert report.tested == 6 and _all_finite(report.signals())
        alarms += bool(report.drifted)
    # Target: at most 1 false-alarm window in 100.
    assert alarms / 150 <= 0.01, f"{alarms} false-alarm windows in 150"


def test_quarter_std_mean_shift_is_detected_on_1000_rows() -> None:
    detector = FeatureDriftDetector()
    hits = 0
    for seed in range(40):
        report = detector.compare(
            REFERENCE, _window(_mixed(1000, np.random.default_rng(1000 + seed), shift=0.25))
        )
        hits += report.drifted == ["normal"]
    assert hits >= 38, f"0.25-std shift found in {hits} of 40 windows"
    finding = detector.detect(
        REFERENCE, _window(_mixed(1000, np.random.default_rng(7), 0.5)), window_index=3
    )[0]
    assert finding.kind is FindingKind.DATA_DRIFT and finding.features == ["normal"]
    assert finding.window == 3 and finding.p_value is not None and finding.p_value < 0.01
    assert finding.message.startswith("normal drifted: Wasserstein 0.")
    assert "PSI" in finding.message and "on 1,000 rows" in finding.message


def test_tiny_shift_on_a_million_rows_is_significant_but_not_flagged() -> None:
    rng = np.random.default_rng(99)
    ref = build_reference({"x": rng.normal(0, 1, 1_000_000)})
    win = Profile.from_data({"x": rng.normal(0.02, 1, 1_000_000)}, ref.layout)
    report = FeatureDriftDetector().compare(ref, win)
    x = report.features["x"]
    assert x.p_adjusted < 1e-6  # the test alone would alarm ...
    assert x.status == "stable" and report.drifted == []  # ... the effect size does not
    assert x.effect < 0.05
    assert "significant but" in x.reason


def test_variance_change_is_caught_by_wasserstein() -> None:
    rng = np.random.default_rng(5)
    frame = _mixed(1000, rng)
    frame["normal"] = rng.normal(0, 2.0, 1000)
    assert FeatureDriftDetector().compare(REFERENCE, _window(frame)).drifted == ["normal"]


def test_categorical_new_level_and_share_change() -> None:
    rng = np.random.default_rng(6)
    frame = _mixed(1000, rng)
    frame.loc[frame.index[:150], "segment"] = "never-seen"
    report = FeatureDriftDetector().compare(REFERENCE, _window(frame))
    assert report.drifted == ["segment"]
    seg = report.features["segment"]
    assert seg.statistic == "jensen_shannon" and seg.effect >= 0.1
    assert seg.stats["unseen_share"] == pytest.approx(0.15)
    finding = report.findings()[0]
    assert "Jensen-Shannon" in finding.message and "15.0% unseen levels" in finding.message


def test_exact_ks_on_raw_arrays_gives_the_same_verdicts() -> None:
    rng = np.random.default_rng(8)
    ref_frame = _mixed(5000, np.random.default_rng(12345))
    win_frame = _mixed(1000, rng, shift=0.3)
    numeric = ["normal", "lognormal", "uniform", "count", "bimodal"]
    report = FeatureDriftDetector().compare(
        REFERENCE,
        _window(win_frame),
        raw_reference={c: ref_frame[c].to_numpy() for c in numeric},
        raw_window={c: win_frame[c].to_numpy() for c in numeric},
    )
    assert report.drifted == ["normal"]
    assert report.features["normal"].stats["ks"] > 0.1


def test_benjamini_hochberg_option_and_bad_thresholds() -> None:
    detector = FeatureDriftDetector(DriftThresholds(correction="bh"))
    frame = _mixed(1000, np.random.default_rng(9), shift=0.5)
    assert detector.compare(REFERENCE, _window(frame)).drifted == ["normal"]
    with pytest.raises(InvalidInput):
        DriftThresholds(alpha=0.0)
    with pytest.raises(InvalidInput):
        DriftThresholds(correction="bonferroni")  # type: ignore[arg-type]


def test_real_electricity_covariate_drift_after_row_17424() -> None:
    elec = load("electricity").drop(columns=["target"])
    reference = build_reference(elec.iloc[:15_000])
    detector = FeatureDriftDetector()
    # Inside the reference period vicprice/vicdemand/transfer are constant on both sides.
    before = detector.compare(
        reference, Profile.from_data(elec.iloc[16_000:17_000], reference.layout)
    )
    for name in ("vicprice", "vicdemand", "transfer"):
        assert before.features[name].status == "stable"
        assert before.features[name].effect < 0.01
    # Later they vary: real covariate drift the detector must name.
    after = detector.compare(
        reference, Profile.from_data(elec.iloc[30_000:31_000], reference.layout)
    )
    assert {"vicprice", "vicdemand", "transfer"} <= set(after.drifted)
    assert _all_finite(after.signals())
    for finding in after.findings(window_index=30):
        assert math.isfinite(finding.score) and math.isfinite(finding.threshold)


def test_bad_inputs_never_crash_and_never_report_nan() -> None:
    detector = FeatureDriftDetector()
    cases = {
        "empty": Profile.from_data([], REFERENCE.layout),
        "one row": _window(_mixed(1, np.random.default_rng(1))),
        "all null": _window(_mixed(1000, np.random.default_rng(2)).assign(normal=np.nan)),
        "constant": _window(_mixed(1000, np.random.default_rng(3)).assign(uniform=1.0)),
        "absent feature": _window(_mixed(1000, np.random.default_rng(4)).drop(columns="count")),
        "not in reference": _window(_mixed(1000, np.random.default_rng(5)).assign(extra=1.0)),
        "mixed types": _window(
            _mixed(1000, np.random.default_rng(6)).assign(
                lognormal=lambda f: f["lognormal"].astype(object).where(f.index % 3 > 0, "n/a")
            )
        ),
    }
    for name, window in cases.items():
        report = detector.compare(REFERENCE, window)
        assert _all_finite(report.signals()), name
        for f in report.features.values():
            assert math.isfinite(f.effect) and math.isfinite(f.p_adjusted), (name, f)
        for finding in report.findings():
            assert math.isfinite(finding.score), name
    assert {f.status for f in detector.compare(REFERENCE, cases["empty"]).features.values()} == {
        "insufficient_data"
    }
    assert detector.compare(REFERENCE, cases["all null"]).features["normal"].status == (
        "insufficient_data"
    )
    assert detector.compare(REFERENCE, cases["absent feature"]).features["count"].status == (
        "absent"
    )
    # A constant window of a varying feature is a (huge) drift, reported with finite numbers.
    assert "uniform" in detector.compare(REFERENCE, cases["constant"]).drifted
    assert "extra" not in detector.compare(REFERENCE, cases["not in reference"]).features


def test_profiles_of_different_types_are_a_clear_error() -> None:
    numeric = ProfileLayout.fit({"x": np.arange(50.0)})
    categorical = ProfileLayout.fit({"x": np.array(["a", "b"] * 25)})
    with pytest.raises(InvalidInput, match="different types"):
        FeatureDriftDetector().compare(
            Profile.from_data({"x": np.arange(50.0)}, numeric),
            Profile.from_data({"x": np.array(["a"] * 50)}, categorical),
        )


def _wide_mixed(n: int, rng: np.random.Generator, shift: float) -> dict[str, np.ndarray]:
    """Numeric columns of every awkward kind beside categoricals: nulls, infinities, a
    constant, a discrete column (fewer bins than the others), one null in the window only."""
    normal = rng.normal(shift, 1.0, n)
    normal[rng.random(n) < 0.1] = np.nan
    heavy = rng.standard_t(2, n) * (1 + shift)
    heavy[::53] = np.inf
    heavy[::59] = -np.inf
    return {
        "normal": normal,
        "heavy": heavy,
        "constant": np.full(n, 7.0),
        "count": rng.poisson(2.0 + shift, n).astype(float),
        "uniform": rng.uniform(0, 1 + shift, n),
        "lognormal": rng.lognormal(shift, 1.0, n),
        "segment": rng.choice(LEVELS, n, p=LEVEL_P),
        "flag": rng.random(n) < 0.3 + 0.2 * shift,
    }


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_features_tested_together_get_the_statistics_each_gets_alone(shift: float) -> None:
    """The check tests the numeric features as rows of one array (``_numeric_batch``); each
    must get what its tests give it alone (``_numeric``), to floating-point tolerance."""
    rng = np.random.default_rng(7)
    reference = build_reference(pd.DataFrame(_wide_mixed(4000, rng, 0.0)))
    window_frame = pd.DataFrame(_wide_mixed(1500, rng, shift))
    window_frame.loc[::3, "count"] = np.nan
    window = Profile.from_data(window_frame, reference.layout)
    thresholds = DriftThresholds()
    report = FeatureDriftDetector(thresholds).compare(reference, window)
    assert report.tested == len(report.features) == 8  # the constant one too
    alone: list[tuple[str, float]] = []
    for name, result in report.features.items():
        ref, win = reference.features[name], window.features[name]
        if isinstance(ref, NumericStats) and isinstance(win, NumericStats):
            single = _numeric(name, ref, win, thresholds, None)
        else:
            assert isinstance(ref, CategoricalStats) and isinstance(win, CategoricalStats)
            single = _categorical(name, ref, win, thresholds)
        assert result.stats.keys() == single.stats.keys()
        for stat, value in single.stats.items():
            assert math.isfinite(result.stats[stat])
            assert result.stats[stat] == pytest.approx(value, rel=1e-12, abs=1e-15), stat
        assert result.statistic == single.statistic
        assert (result.effect, result.p_value) == pytest.approx(
            (single.effect, single.p_value), rel=1e-12, abs=1e-15
        )
        alone.append((name, single.p_value))
    # the family-wise correction and the verdicts are those of the features one by one
    adjusted = dict(zip([n for n, _ in alone], holm([p for _, p in alone]), strict=True))
    for name, result in report.features.items():
        assert result.p_adjusted == pytest.approx(adjusted[name], rel=1e-12, abs=1e-15)
    if shift:
        assert {"normal", "uniform", "lognormal", "count"} <= set(report.drifted)
    else:
        assert report.drifted == []
