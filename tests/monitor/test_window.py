"""Windows by count and by time, record conversion, late-label routing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mlwarden.domain import Record
from mlwarden.errors import InvalidInput
from mlwarden.monitor.window import (
    LabelJoiner,
    WindowSpec,
    columns_frame,
    iter_windows,
    records_frame,
)


def test_count_windows_cover_the_stream_in_order() -> None:
    frame = pd.DataFrame({"id": range(2500)})
    sizes = [(i, len(w), int(w["id"].iloc[0])) for i, w in iter_windows(frame, WindowSpec(1000))]
    assert sizes == [(0, 1000, 0), (1, 1000, 1000), (2, 500, 2000)]
    assert list(iter_windows(frame.iloc[0:0], WindowSpec(10))) == []


def test_time_windows_include_empty_ones_and_unparseable_stamps_follow_their_neighbour() -> None:
    frame = pd.DataFrame(
        {
            "timestamp": [
                "2026-01-01T00:10:00Z",
                "2026-01-01T00:20:00Z",
                "garbage",
                "2026-01-01T03:05:00Z",
            ],
            "x": [1, 2, 3, 4],
        }
    )
    windows = [(i, w["x"].tolist()) for i, w in iter_windows(frame, WindowSpec.parse("1h"))]
    assert windows == [(0, [1, 2, 3]), (1, []), (2, [4])]
    epoch = pd.DataFrame({"timestamp": [0.0, 30.0, 61.0], "x": [1, 2, 3]})
    assert [len(w) for _, w in iter_windows(epoch, WindowSpec.parse("1min"))] == [2, 1]


def test_window_spec_errors_are_clear() -> None:
    assert WindowSpec.parse(500).size == 500
    with pytest.raises(InvalidInput, match="neither a record count"):
        WindowSpec.parse("soon")
    with pytest.raises(InvalidInput, match="at least 1"):
        WindowSpec.parse("0")
    with pytest.raises(InvalidInput, match="timestamp column"):
        list(iter_windows(pd.DataFrame({"x": [1]}), WindowSpec.parse("1h")))
    with pytest.raises(InvalidInput, match="no readable timestamp"):
        list(iter_windows(pd.DataFrame({"timestamp": ["x"]}), WindowSpec.parse("1h")))


def test_records_become_a_frame_with_conventional_columns() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    records = [
        Record(
            id="a",
            model="m",
            timestamp=now,
            features={"x": 1.0},
            prediction="yes",
            scores={"yes": 0.8, "no": 0.2},
            latency_ms=12.0,
        ),
        Record(
            id="b",
            model="m",
            timestamp=now + timedelta(seconds=1),
            features={"x": 2.0},
            prediction="no",
            scores=0.3,
            error="timeout",
        ),
    ]
    frame = records_frame([r.model_dump() for r in records], labels={"a": "yes"})
    assert frame.loc[0, "proba_yes"] == 0.8 and frame.loc[1, "score"] == 0.3
    assert frame.loc[0, "label"] == "yes" and pd.isna(frame.loc[1, "label"])
    assert frame.loc[1, "error"] == "timeout"
    # the same records given column by column (the agent's windows): the same table
    dumped = [r.model_dump() for r in records]
    by_column = {
        "id": [r["id"] for r in dumped],
        "timestamp": [r["timestamp"] for r in dumped],
        **{k: [r.get(k) for r in dumped] for k in ("features", "prediction", "scores")},
        **{k: [r.get(k) for r in dumped] for k in ("latency_ms", "error", "label")},
    }
    pd.testing.assert_frame_equal(columns_frame(by_column, labels={"a": "yes"}), frame)
    # a feature named like a record's column keeps its place and takes the record's value
    clash = [{**r, "features": {"id": 0, **r["features"]}} for r in dumped]
    named = records_frame(clash)
    assert list(named.columns[:2]) == ["id", "x"] and named["id"].tolist() == ["a", "b"]
    # records without features still have one row each
    bare = records_frame([{**r, "features": {}} for r in dumped])
    assert bare["id"].tolist() == ["a", "b"] and "x" not in bare.columns


def test_label_joiner_forgets_old_windows() -> None:
    joiner = LabelJoiner(keep_windows=2)
    for index in range(3):
        joiner.add_window(index, [f"{index}-a", f"{index}-b"])
    routed, unknown = joiner.route({"0-a": 1, "1-b": 0, "2-a": 1, "nope": 1})
    assert routed == {1: {"1-b": 0}, 2: {"2-a": 1}}
    assert unknown == 2
