"""Data-quality checks on windows with known breakage, and silence on clean windows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mlwarden.datasets import load
from mlwarden.detect.quality import QualityDetector
from mlwarden.domain import FeatureSpec, FeatureType, FindingKind, ModelSpec, Task
from mlwarden.stats.profile import Profile
from mlwarden.stats.reference import build_reference


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 12, n).clip(18, 90),
            "income": rng.lognormal(10, 0.5, n),
            "rating": rng.normal(0, 1, n),  # centred: the mean carries no scale information
            "city": rng.choice(["paris", "lyon", "nice", "lille"], n),
        }
    )


REFERENCE = build_reference(_frame(5000, 0))


def _checks(frame: pd.DataFrame, detector: QualityDetector | None = None) -> dict[tuple, dict]:
    findings = (detector or QualityDetector()).detect(
        REFERENCE, Profile.from_data(frame, REFERENCE.layout), window_index=7
    )
    for f in findings:
        # values past the reference range are a shift of the data; every other check is quality
        expected = (
            FindingKind.DATA_DRIFT
            if f.evidence["check"] == "out_of_range"
            else (FindingKind.DATA_QUALITY)
        )
        assert f.kind is expected and f.window == 7
        assert math.isfinite(f.score) and math.isfinite(f.threshold)
        assert f.message
    return {(tuple(f.features), f.evidence["check"]): f.evidence for f in findings}


def test_clean_windows_raise_nothing() -> None:
    noisy = [seed for seed in range(1, 61) if _checks(_frame(1000, seed))]
    assert noisy == []


def test_null_burst_names_feature_and_rates() -> None:
    frame = _frame(1000, 1)
    frame.loc[frame.index[:610], "income"] = np.nan
    checks = _checks(frame)
    assert list(checks) == [(("income",), "null_burst")]
    evidence = checks[(("income",), "null_burst")]
    assert evidence["null_rate"] == 0.61 and evidence["reference_null_rate"] == 0.0


def test_small_null_rise_on_small_window_is_not_a_burst() -> None:
    frame = _frame(40, 2)
    frame.loc[frame.index[:1], "income"] = np.nan
    assert _checks(frame) == {}


def test_unit_change_x100_and_x1000_not_reported_as_range() -> None:
    frame = _frame(1000, 3)
    frame["income"] = frame["income"] * 100
    frame["rating"] = frame["rating"] / 1000
    checks = _checks(frame)
    assert set(checks) == {(("income",), "unit_change"), (("rating",), "unit_change")}
    assert checks[(("income",), "unit_change")]["factor"] == 100.0
    assert checks[(("rating",), "unit_change")]["factor"] == 0.001


def test_out_of_range_and_schema_range() -> None:
    spec = ModelSpec(
        name="credit",
        task=Task.CLASSIFICATION,
        features=[
            FeatureSpec(name="age", minimum=18, maximum=90),
            FeatureSpec(name="income"),
            FeatureSpec(name="rating"),
            FeatureSpec(name="city", type=FeatureType.CATEGORICAL),
        ],
    )
    frame = _frame(1000, 4)
    frame.loc[frame.index[:50], "age"] = -1.0
    checks = _checks(frame, QualityDetector(spec))
    assert (("age",), "out_of_range") in checks
    assert checks[(("age",), "out_of_range")]["below"] == 50
    assert checks[(("age",), "schema_range")]["minimum"] == 18


def test_unseen_categories_and_constant_features() -> None:
    frame = _frame(1000, 5)
    frame.loc[frame.index[:80], "city"] = "marseille"
    frame["rating"] = 0.5
    checks = _checks(frame)
    assert checks[(("city",), "unseen_category")]["unseen"] == {"marseille": 80}
    assert (("rating",), "constant") in checks
    constant_city = _frame(200, 6).assign(city="paris")
    assert (("city",), "constant") in _checks(constant_city)


def test_schema_breaks_missing_renamed_retyped_and_unknown() -> None:
    frame = _frame(1000, 7).rename(columns={"income": "income_eur"})
    frame["age"] = frame["age"].map(lambda v: f"{v:.0f} years")
    spec = ModelSpec(
        name="credit",
        task=Task.REGRESSION,
        features=[FeatureSpec(name=n) for n in ("age", "income", "rating", "brand_new")],
    )
    checks = _checks(frame, QualityDetector(spec))
    assert (("income",), "missing_feature") in checks
    assert (("income_eur",), "unknown_column") in checks
    assert (("age",), "retyped") in checks
    assert (("brand_new",), "not_in_reference") in checks
    message = next(
        f.message
        for f in QualityDetector().detect(REFERENCE, Profile.from_data(frame, REFERENCE.layout))
        if f.evidence["check"] == "unknown_column"
    )
    assert "renamed from income?" in message


def test_stray_strings_in_numeric_feature_are_type_violations() -> None:
    frame = _frame(1000, 8)
    frame["rating"] = frame["rating"].astype(object)
    frame.loc[frame.index[:30], "rating"] = "N/A"
    checks = _checks(frame)
    assert list(checks) == [(("rating",), "type_violation")]


def test_bad_windows_do_not_crash() -> None:
    detector = QualityDetector()
    assert detector.detect(REFERENCE, Profile.from_data([], REFERENCE.layout)) == []
    one = detector.detect(REFERENCE, Profile.from_data(_frame(1, 9), REFERENCE.layout))
    assert one == []
    all_null = _frame(500, 10).assign(age=np.nan, city=None)
    checks = _checks(all_null)
    assert (("age",), "null_burst") in checks and (("city",), "null_burst") in checks


def test_real_electricity_constant_reference_that_starts_varying_is_not_a_unit_change() -> None:
    elec = load("electricity").drop(columns=["target"])
    reference = build_reference(elec.iloc[:15_000])
    window = Profile.from_data(elec.iloc[30_000:31_000], reference.layout)
    checks = {
        (tuple(f.features), f.evidence["check"])
        for f in QualityDetector().detect(reference, window)
    }
    # vicprice was a single value in the reference: new values are out of its range, which is
    # what an operator should see, and nothing here is a rescaling.
    assert (("vicprice",), "out_of_range") in checks
    assert not any(check == "unit_change" for _, check in checks)


def test_a_unit_change_is_past_its_threshold_so_the_agent_counts_it() -> None:
    """The agent keeps only findings with score >= threshold; a x100 rescale must be one."""
    import numpy as np
    import pandas as pd

    from mlwarden.detect.quality import QualityDetector
    from mlwarden.stats.profile import Profile

    rng = np.random.default_rng(7)
    reference = Profile.reference(pd.DataFrame({"demand": rng.normal(5.0, 1.0, 5000)}))
    for factor in (100.0, 0.001):
        window = pd.DataFrame({"demand": rng.normal(5.0, 1.0, 1000) * factor})
        findings = QualityDetector().detect(reference, Profile.from_data(window, reference.layout))
        unit = [f for f in findings if f.evidence.get("check") == "unit_change"]
        assert unit, factor
        assert unit[0].score / unit[0].threshold >= 1.0
        assert unit[0].evidence["factor"] == factor


def test_a_dry_week_of_rain_is_not_a_unit_change_but_rain_x100_is() -> None:
    """Rain is zero most hours (its mean a fifth of its std), so a week with a tenth of the
    rainy hours shrinks its spread about tenfold: on the bundled New York flights, window
    12,000-13,000 (late May) was called "rescaled by 0.1" and the agent's repair multiplied
    real rain by ten. A rescale moves the mean of a never-negative feature by the same factor,
    which a dry week does not."""
    rng = np.random.default_rng(11)

    def rain(n: int, share: float, scale: float = 0.05) -> pd.DataFrame:
        wet = rng.random(n) < share
        return pd.DataFrame({"rain": np.where(wet, rng.exponential(scale, n), 0.0)})

    reference = build_reference(rain(5000, 0.15))

    def checks(frame: pd.DataFrame) -> list[tuple[str, object]]:
        found = QualityDetector().detect(reference, Profile.from_data(frame, reference.layout))
        return [(f.evidence["check"], f.evidence.get("factor")) for f in found]

    # a third of the rainy hours, and drizzle: the spread falls about tenfold, the mean 15-fold
    assert checks(rain(1000, 0.05, scale=0.01)) == []
    assert checks(rain(1000, 0.15) * 100) == [("unit_change", 100.0)]
    flights = load("flights")[["precip"]]
    real = build_reference(flights.iloc[5600:8000])  # the scenarios' held-out reference rows
    dry = Profile.from_data(flights.iloc[12_000:13_000], real.layout)
    assert not [
        f for f in QualityDetector().detect(real, dry) if f.evidence["check"] == "unit_change"
    ]


def test_a_calendar_column_in_time_order_is_not_a_stuck_feed_but_a_longer_stretch_is() -> None:
    """On the bundled New York flights read in time order, ``month`` holds one value for
    3,300 flights in a row in the reference (January to mid-March): a window of 1,000 flights
    in April holding only ``4`` is the calendar, not a stuck feed. The same window against a
    shuffled reference (runs of a few rows), or a feed stuck for longer than the reference ever
    held one value, is still a constant feature."""
    flights = load("flights").drop(columns=["time_hour", "late"])
    in_order = build_reference(flights.iloc[:8_000])
    shuffled = build_reference(flights.iloc[:8_000].sample(frac=1.0, random_state=0))
    april = flights[flights["month"] == 4].iloc[:1_000]
    assert set(april["month"]) == {4}

    def constant(reference: Any, frame: pd.DataFrame) -> set[str]:
        window = Profile.from_data(frame, reference.layout)
        return {
            f.features[0]
            for f in QualityDetector().detect(reference, window)
            if f.evidence["check"] == "constant"
        }

    assert in_order.features["month"].longest_run == 3_300
    assert "month" not in constant(in_order, april)
    assert "month" in constant(shuffled, april)
    stuck = flights.iloc[8_000:12_000].assign(month=4)  # 4,000 rows: longer than any run seen
    assert "month" in constant(in_order, stuck)
    # categorical too: one airport for longer than the reference ever held one
    assert "origin" in constant(in_order, flights.iloc[8_000:9_000].assign(origin="JFK"))


def test_longest_run_survives_storage_and_merges_as_the_longer() -> None:
    from mlwarden.stats.profile import longest_run

    flights = load("flights").drop(columns=["time_hour", "late"])
    reference = build_reference(flights.iloc[:8_000])
    again = Profile.from_dict(reference.to_dict())
    assert again.features["month"].longest_run == reference.features["month"].longest_run == 3_300
    first = Profile.from_data(flights.iloc[:2_000], reference.layout)
    second = Profile.from_data(flights.iloc[2_000:8_000], reference.layout)
    merged = first.merge(second)
    assert merged.features["month"].longest_run == max(
        longest_run(flights["month"].iloc[:2_000].to_numpy()),
        longest_run(flights["month"].iloc[2_000:8_000].to_numpy()),
    )


def _unit_changes(reference: Profile, frame: pd.DataFrame) -> list[dict[str, Any]]:
    window = Profile.from_data(frame, reference.layout)
    return [
        {"features": f.features, **f.evidence}
        for f in QualityDetector().detect(reference, window)
        if f.evidence["check"] == "unit_change"
    ]


def test_miles_turned_into_kilometres_are_found_in_either_order() -> None:
    """x1.609 is no power of ten: the spread and mean move by a factor that real drift moves
    them by too, and the converted values mostly stay inside the miles' range. The whole shape
    of the window is the reference's stretched by the factor, which drift's is not."""
    flights = load("flights").drop(columns=["late"])
    reference = build_reference(flights.iloc[:8000])  # the flights scenarios' reference rows
    shuffled = flights.iloc[8000:].sample(frac=1.0, random_state=3)
    for window in (flights.iloc[14_000:15_000], shuffled.iloc[:1000]):
        assert _unit_changes(reference, window) == []
        km = _unit_changes(reference, window.assign(distance=window["distance"] * 1.609344))
        assert [(u["features"], u["factor"], u["unit"]) for u in km] == [
            (["distance"], 1.609344, "mi -> km")
        ]
        back = _unit_changes(reference, window.assign(distance=window["distance"] / 1.609344))
        assert [u["unit"] for u in back] == ["km -> mi"]


def test_no_unit_change_on_the_bundled_data_in_time_order_against_the_scenarios_references() -> (
    None
):
    """Every window of the bundled datasets after each built-in scenario's reference, in time
    order (the seasons, the price levels of two years of Elec2): no column changes unit, so any
    unit_change finding is false. (bench/bench_unit_factors.py looks wider.)"""
    from mlwarden.datasets import DATASETS
    from mlwarden.scenarios.spec import builtin_names, load_scenario

    setups = {
        (s.dataset, tuple(s.reference), s.window)
        for s in (load_scenario(name) for name in builtin_names())
    }
    false = []
    for dataset, (start, end), size in sorted(setups):
        frame = load(dataset).drop(columns=[DATASETS[dataset].target])
        reference = build_reference(frame.iloc[start:end])
        for at in range(end, len(frame) - size + 1, size):
            false += _unit_changes(reference, frame.iloc[at : at + size])
    assert false == []


def test_a_new_season_in_time_order_is_drift_and_a_new_weather_label_is_a_quality_break() -> None:
    """On the bundled bike rentals read in time order, the reference profile of the scenarios
    (the last 1,500 of the first 5,000 hours, May to July 2011) holds the seasons 'summer' and
    'fall' only; window 1 of ``control_bike_sharing``'s stream holds 'winter' (the dataset's
    name for October to December) in 750 of 1,000 hours. That is the calendar moving on,
    reported as drift (``calendar_level``: no repair may rewrite it), and a window of winter
    alone is no stuck feed. The weather label 'Smoke' that ``bike_category_new`` injects into
    30 % of the rows is a break (``unseen_category``, data quality), so is 'Smoke' written into
    the season column, and so is a weather feed stuck on one label."""
    bikes = load("bike_sharing").drop(columns=["dteday", "casual", "registered", "cnt"])
    reference = build_reference(bikes.iloc[3_500:5_000])
    autumn = bikes.iloc[6_000:7_000].reset_index(drop=True)
    winter = bikes.iloc[7_000:8_000].reset_index(drop=True)
    assert set(winter["season"]) == {"winter"}

    def found(frame: pd.DataFrame) -> dict[tuple[str, str], Any]:
        window = Profile.from_data(frame, reference.layout)
        return {
            (f.features[0], f.evidence["check"]): f
            for f in QualityDetector().detect(reference, window)
            if f.evidence["check"] in ("calendar_level", "unseen_category", "constant")
        }

    natural = found(autumn)
    assert set(natural) == {("season", "calendar_level")}
    season = natural["season", "calendar_level"]
    assert season.kind is FindingKind.DATA_DRIFT
    assert season.evidence["unseen"] == {"winter": 750}
    assert season.evidence["calendar"] == "seasons"
    assert "new values of a calendar column (seasons)" in season.message
    assert reference.features["season"].longest_run < len(winter)  # shorter than the window
    assert set(found(winter)) == {("season", "calendar_level")}  # not a constant feature

    smoke = autumn.copy()
    smoke.loc[smoke.index[::3], "weathersit"] = "Smoke"
    broken = found(smoke)
    assert broken["weathersit", "unseen_category"].kind is FindingKind.DATA_QUALITY
    assert broken["season", "calendar_level"].kind is FindingKind.DATA_DRIFT
    stray = autumn.assign(season=autumn["season"].where(autumn.index % 3 > 0, "Smoke"))
    assert found(stray)["season", "unseen_category"].kind is FindingKind.DATA_QUALITY
    assert ("weathersit", "constant") in found(autumn.assign(weathersit="Clear"))


def test_values_near_the_float_limit_are_checked_without_a_crash_or_a_false_constant() -> None:
    """A feature around 1e300 overflows its sum of squares (its spread reads as infinite):
    the checks go on, find nothing in a window like the reference, and find the values
    beyond its range in a window ten times as wide (before: ``ValueError: cannot convert
    float NaN to integer`` in the unit check, and "a is constant")."""
    import warnings

    from mlwarden.detect.drift import FeatureDriftDetector

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(size=5000) * 1e300, "b": rng.normal(size=5000)})
    reference = build_reference(ref)
    for factor, expected in ((1, set()), (10, {("a", "out_of_range")})):
        window = pd.DataFrame(
            {"a": rng.normal(size=1000) * 1e300 * factor, "b": rng.normal(size=1000)}
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no overflow warning reaches the user either
            profile = Profile.from_data(window, reference.layout)
            found = QualityDetector().detect(reference, profile)
            drifted = FeatureDriftDetector().compare(reference, profile).drifted
        assert {(f.features[0], f.evidence["check"]) for f in found} == expected
        assert drifted == (["a"] if factor == 10 else [])
