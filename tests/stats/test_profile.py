"""Profiles: merge laws (hypothesis), fidelity of summaries, inputs of every accepted shape,
serialisation, bounded memory, references, and bad input that must not crash."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.domain import FeatureSpec, FeatureType, ModelSpec, Task
from mlwarden.errors import InvalidInput
from mlwarden.stats.profile import (
    CategoricalStats,
    NumericBins,
    NumericStats,
    Profile,
    ProfileLayout,
    _as_float,
    longest_run,
    profile_chunks,
)
from mlwarden.stats.reference import ReferenceBuilder, build_reference
from mlwarden.stats.sketch import LogSketch


def _reference_frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(10, 2, n),
            "k": rng.integers(0, 5, n).astype(float),
            "c": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "prediction": rng.integers(0, 2, n),
            "proba_0": rng.random(n),
            "latency_ms": rng.lognormal(2, 0.5, n),
        }
    )


LAYOUT = ProfileLayout.fit(_reference_frame())

values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-1000, 1000),
    st.sampled_from(["abc", "1.5"]),
)
rows = st.lists(
    st.fixed_dictionaries(
        {
            "x": values,
            "k": st.one_of(st.none(), st.integers(-3, 8)),
            "c": st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "new1", "new2"])),
            "latency_ms": st.one_of(st.none(), st.floats(0, 1e4)),
        }
    ),
    max_size=40,
)


def _same(a: Profile, b: Profile, runs_at_most: bool = False) -> None:
    """Equal up to floating-point rounding of the mergeable moments; with ``runs_at_most``,
    ``a``'s longest runs may be shorter than ``b``'s (a merge does not see a run across its
    parts' boundary: it keeps the longer of theirs, a lower bound)."""
    assert a.rows == b.rows
    assert a.latency == b.latency
    assert a.extra_columns == b.extra_columns
    for name, sa in a.features.items():
        sb = b.features[name]
        da, db = sa.to_dict(), sb.to_dict()
        run_a, run_b = da.pop("longest_run"), db.pop("longest_run")
        assert run_a <= run_b if runs_at_most else run_a == run_b, name
        for key in ("mean", "m2"):
            if key in da:
                assert math.isclose(da.pop(key), db.pop(key), rel_tol=1e-7, abs_tol=1e-6)
        assert da == db, name


@settings(max_examples=60, deadline=None)
@given(rows, rows)
def test_merge_of_parts_equals_profile_of_union(a: list[dict], b: list[dict]) -> None:
    whole = Profile.from_data(a + b, LAYOUT)
    merged = Profile.from_data(a, LAYOUT).merge(Profile.from_data(b, LAYOUT))
    _same(merged, whole, runs_at_most=True)


@settings(max_examples=40, deadline=None)
@given(rows, rows, rows)
def test_merge_is_associative_and_commutative(a: list, b: list, c: list) -> None:
    pa, pb, pc = (Profile.from_data(r, LAYOUT) for r in (a, b, c))
    _same(pa.merge(pb).merge(pc), pa.merge(pb.merge(pc)))
    _same(pa.merge(pb), pb.merge(pa))


def test_numeric_summary_matches_numpy() -> None:
    frame = _reference_frame(5000, seed=3)
    stats = Profile.from_data(frame, LAYOUT).features["x"]
    assert isinstance(stats, NumericStats)
    x = frame["x"].to_numpy()
    assert stats.count == 5000
    assert stats.min == x.min() and stats.max == x.max()
    assert math.isclose(stats.mean, x.mean(), rel_tol=1e-12)
    assert math.isclose(stats.variance, x.var(ddof=1), rel_tol=1e-9)
    assert stats.hist.sum() == 5000
    # Quantiles from the fixed bins land within one reference bin (1 % of mass) of the truth.
    for q in (0.05, 0.5, 0.95):
        approx = stats.quantile(q)
        assert approx is not None
        rank = (x <= approx).mean()
        assert abs(rank - q) < 0.015


def test_chunked_stream_equals_single_pass_with_chan_variance() -> None:
    frame = _reference_frame(10_000, seed=4)
    chunks = [frame.iloc[i : i + 777] for i in range(0, len(frame), 777)]
    _same(profile_chunks(chunks, LAYOUT), Profile.from_data(frame, LAYOUT))


def test_pandas_polars_dict_and_records_agree() -> None:
    frame = _reference_frame(300, seed=5)
    expected = Profile.from_data(frame, LAYOUT).to_dict()
    for data in (
        pl.from_pandas(frame),
        {c: frame[c].to_numpy() for c in frame.columns},
        frame.to_dict(orient="records"),
    ):
        got = Profile.from_data(data, LAYOUT).to_dict()
        for name in ("x", "k", "c"):
            g, e = dict(got["features"][name]), dict(expected["features"][name])
            for key in ("mean", "m2"):
                if key in g:
                    assert math.isclose(g.pop(key), e.pop(key), rel_tol=1e-9, abs_tol=1e-9)
            assert g == e, (type(data), name)


def test_categorical_levels_other_and_unseen() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"c": [f"l{i}" for i in rng.integers(0, 80, 5000)]})
    layout = ProfileLayout.fit(ref, max_levels=10)
    column = np.array(["l1"] * 5 + ["l79"] * 3 + ["brand-new"] * 2)
    window = Profile.from_data({"c": column}, layout)
    stats = window.features["c"]
    assert isinstance(stats, CategoricalStats)
    assert len(layout.features["c"].levels) == 10  # type: ignore[union-attr]
    assert stats.count == 10
    assert stats.unseen == {"brand-new": 2}
    assert stats.other + int(stats.counts.sum()) == 8


@pytest.mark.parametrize("frame_of", [pd.DataFrame, pl.DataFrame])
def test_integer_classes_that_became_floats_beside_a_null_keep_their_levels(frame_of) -> None:
    # A failed call has no answer: its null turns the window's 0/1 answers into 0.0/1.0.
    # Those are the reference's classes "0" and "1", not 100 % classes it never saw
    # (elec_errors' windows read as a total prediction drift).
    spec = ModelSpec(
        name="m",
        task=Task.CLASSIFICATION,
        features=[FeatureSpec(name="code", type=FeatureType.CATEGORICAL)],
    )
    ref = build_reference({"code": [1, 2] * 50, "prediction": [0, 1, 1, 0] * 25}, spec)
    window = frame_of(
        {"code": [1.0, 2.0, None, 2.0, 1.0], "prediction": [0.0, 1.0, None, 1.0, 1.0]}
    )
    profile = Profile.from_data(window, ref.layout)
    answers, codes = profile.prediction, profile.features["code"]
    assert isinstance(answers, CategoricalStats) and isinstance(codes, CategoricalStats)
    assert answers.frequencies() == {"0": 1, "1": 3} and answers.nulls == 1
    assert codes.frequencies() == {"1": 2, "2": 2} and codes.nulls == 1
    # a true fraction stays itself: a class the reference never gave
    other = Profile.from_data(
        frame_of({"code": [1, 2, 1], "prediction": [0.5, 1.0, None]}), ref.layout
    )
    assert other.prediction.unseen == {"0.5": 1}  # type: ignore[union-attr]


def test_outputs_latency_errors_and_time_range() -> None:
    frame = _reference_frame(1000, seed=6)
    frame["error"] = [None] * 990 + ["timeout"] * 10
    frame["timestamp"] = pd.date_range("2024-01-01", periods=1000, freq="min", tz="UTC")
    profile = Profile.from_data(frame, LAYOUT)
    assert profile.errors == 10
    assert profile.time_min == pd.Timestamp("2024-01-01", tz="UTC").timestamp()
    assert profile.time_max - profile.time_min == 999 * 60  # type: ignore[operator]
    p = profile.latency_percentiles()
    true = np.percentile(frame["latency_ms"], [50, 95, 99])
    for got, want in zip((p["p50"], p["p95"], p["p99"]), true, strict=True):
        assert got is not None and abs(got / want - 1) < 0.03
    # Without a schema, 0/1 integer predictions are profiled as numbers.
    assert isinstance(profile.prediction, NumericStats) and profile.prediction.count == 1000
    assert profile.score is not None and profile.score.count == 1000  # type: ignore[union-attr]


def test_json_round_trip_with_and_without_layout() -> None:
    profile = Profile.from_data(_reference_frame(500, seed=7), LAYOUT)
    text = json.dumps(profile.to_dict())
    assert Profile.from_dict(json.loads(text)).to_dict() == profile.to_dict()
    small = json.loads(json.dumps(profile.to_dict(include_layout=False)))
    assert Profile.from_dict(small, LAYOUT).to_dict() == profile.to_dict()
    with pytest.raises(InvalidInput, match="layout"):
        Profile.from_dict(small)
    assert ProfileLayout.from_dict(json.loads(json.dumps(LAYOUT.to_dict()))) == LAYOUT


def test_bad_inputs_are_counted_not_crashing() -> None:
    window = Profile.from_data(
        [
            {"x": "abc", "c": 3, "k": None},
            {"x": "1.5", "c": None, "k": float("nan")},
            {"x": float("inf"), "c": "a", "unexpected": 1},
            {"x": True, "c": "a"},
        ],
        LAYOUT,
    )
    x = window.features["x"]
    assert isinstance(x, NumericStats)
    assert (x.count, x.invalid, x.non_finite, x.nulls) == (1, 2, 1, 0)
    assert window.features["k"].nulls == 4  # type: ignore[union-attr]
    assert window.extra_columns == {"unexpected": 4}
    assert window.features["c"].unseen == {"3": 1}  # type: ignore[union-attr]
    empty = Profile.from_data([], LAYOUT)
    assert empty.rows == 0 and empty.features["x"].count == 0  # type: ignore[union-attr]
    assert empty.features["x"].quantile(0.5) is None  # type: ignore[union-attr]
    missing = Profile.from_data({"c": ["a", "b"]}, LAYOUT)
    assert missing.features["x"].absent == 2  # type: ignore[union-attr]


def test_rejects_unusable_input_with_clear_errors() -> None:
    with pytest.raises(InvalidInput, match="different lengths"):
        Profile.from_data({"x": [1, 2], "c": ["a"]}, LAYOUT)
    with pytest.raises(InvalidInput, match="cannot profile"):
        Profile.from_data(42, LAYOUT)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="empty reference"):
        ProfileLayout.fit([])
    other = ProfileLayout.fit(_reference_frame(100, seed=9))
    with pytest.raises(InvalidInput, match="different layouts"):
        Profile.empty(LAYOUT).merge(Profile.empty(other))


def test_schema_decides_types_and_constant_reference_has_bins() -> None:
    spec = ModelSpec(
        name="m",
        task=Task.CLASSIFICATION,
        features=[
            FeatureSpec(name="code", type=FeatureType.CATEGORICAL),
            FeatureSpec(name="flat", type=FeatureType.NUMERIC),
            FeatureSpec(name="never", type=FeatureType.NUMERIC),
        ],
    )
    data = {"code": np.array([1, 2, 3] * 10), "flat": np.full(30, 7.0), "prediction": [0, 1] * 15}
    ref = build_reference(data, spec)
    assert ref.layout.categorical_features == ["code"]
    assert ref.layout.numeric_features == ["flat", "never"]
    flat = ref.features["flat"]
    assert isinstance(flat, NumericStats) and flat.hist[1] == 30 and flat.std == 0.0
    assert ref.features["never"].absent == 30  # type: ignore[union-attr]
    assert isinstance(ref.prediction, CategoricalStats)


def test_reference_from_first_production_records() -> None:
    frame = _reference_frame(1000, seed=10)
    builder = ReferenceBuilder(size=600)
    assert builder.add(frame.iloc[:250]) is None and builder.remaining == 350
    reference = builder.add(pl.from_pandas(frame.iloc[250:]))
    assert reference is not None and reference.rows == 600 and builder.ready
    assert builder.sample is not None and len(builder.sample) == 600
    assert builder.add(frame) is None  # fixed once learned
    with pytest.raises(InvalidInput):
        ReferenceBuilder(size=1)


def test_log_sketch_relative_accuracy_and_merge() -> None:
    rng = np.random.default_rng(0)
    values = rng.lognormal(3, 1.5, 20_000)
    a, b = LogSketch(), LogSketch()
    a.add(values[:7000])
    b.add(values[7000:])
    merged = a.merge(b)
    whole = LogSketch()
    whole.add(values)
    assert merged == whole
    for q in (0.5, 0.95, 0.99):
        true = np.quantile(values, q, method="lower")
        assert abs(merged.quantile(q) / true - 1) <= 0.02  # type: ignore[operator]
    assert LogSketch.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged
    assert LogSketch().quantile(0.5) is None


def test_one_pass_reference_equals_fit_then_profile_and_threads_change_nothing() -> None:
    frame = pl.from_pandas(_reference_frame(60_000, seed=11))  # above the parallel threshold
    fused = Profile.reference(frame)
    layout = ProfileLayout.fit(frame)
    assert fused.layout == layout
    _same(fused, Profile.from_data(frame, layout))
    chunks = [frame.slice(i, 10_000) for i in range(0, 60_000, 10_000)]  # sequential path
    _same(profile_chunks(chunks, layout), fused)


@pytest.mark.parametrize(
    "column",
    [
        pl.Series("x", [1.0, None, float("nan"), math.inf, 2.0, 2.0, -math.inf, 3.0]),
        pl.Series("x", [1.5, 2.5, 2.5, 2.5, 0.5]),  # finite: the path without any mask
        pl.Series("x", [3, None, 3, 3, 4], dtype=pl.Int64),
        pl.Series("x", ["1", " 2 ", "abc", None, "2", "nan"]),
        pl.Series("x", [None, None], dtype=pl.Float64),
        pl.Series("x", [math.inf, math.inf, -math.inf]),
        pl.Series("x", [], dtype=pl.Float64),
        pd.Series([1.0, "abc", None, True, 4.0, 4.0], dtype=object),
        np.array([np.nan, np.nan, 5.0]),
    ],
)
def test_numeric_counts_match_the_general_helpers(column: object) -> None:
    """A column whose sum is finite skips the NaN count; every column still gets the counts
    and run length that converting it (``_as_float``) and ``longest_run`` give."""
    values, nulls, invalid = _as_float(column)
    finite = values[np.isfinite(values)]
    for stats in (
        NumericStats.of(NumericBins(np.array([0.0, 2.0, 5.0])), column, len(values)),
        NumericStats.fit(column)[1],
    ):
        assert (stats.count, stats.nulls, stats.invalid) == (finite.size, nulls, invalid)
        assert stats.non_finite == values.size - finite.size - nulls - invalid
        assert stats.longest_run == longest_run(values)
        if finite.size:
            assert (stats.min, stats.max) == (finite.min(), finite.max())
            assert stats.mean == pytest.approx(finite.mean(), rel=1e-15)
        assert stats.hist.sum() == finite.size
