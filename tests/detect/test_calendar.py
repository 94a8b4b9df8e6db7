"""A new level of a calendar column is time moving on; any other new level may be a break."""

from __future__ import annotations

import pytest

from mlwarden.detect.calendar import cycle, progression


@pytest.mark.parametrize(
    ("known", "new", "cycle"),
    [
        (["spring", "summer", "fall"], ["winter"], "seasons"),
        (["Spring", "Summer"], ["Autumn"], "seasons"),  # case and the British name
        (["Jan", "Feb", "March"], ["Apr", "May"], "months"),
        (["Mon", "Tue", "Wed", "Thu", "Fri"], ["Sat", "Sun"], "weekdays"),
        ([f"{h}am" for h in range(1, 12)], ["12pm", "1pm"], "hours"),
        (["06:00", "07:00"], ["18:00"], "hours"),
        (["Q1", "Q2"], ["Q3"], "quarters"),
        (["1", "2", "3", "4", "5", "6", "7"], ["8"], "integers 1-8"),
        (["2011"], ["2012"], "integers 2011-2012"),
        (["1.0", "3.0"], ["2.0"], "integers 1-3"),  # a gap the new code fills
    ],
)
def test_new_levels_of_a_calendar_continue_it(known: list[str], new: list[str], cycle: str) -> None:
    assert progression(known, new) == cycle


@pytest.mark.parametrize(
    ("known", "new"),
    [
        (["Clear", "Mist", "Light Rain", "Heavy Rain"], ["Smoke"]),  # bike_category_new's fault
        (["spring", "summer", "fall"], ["Smoke"]),  # a stray value in a calendar column
        (["spring", "summer", "fall"], ["winter", "unknown"]),  # one stray among calendar ones
        (["Mon", "Tue"], ["winter"]),  # another calendar's name: a mixed-up column
        (["1", "2", "3", "4"], ["99"]),  # a code far past the range
        (["1", "2", "3", "4"], ["6"]),  # a gap: 5 was skipped
        (["paris", "lyon"], ["marseille"]),
        ([], ["winter"]),
        (["spring"], []),
    ],
)
def test_other_new_levels_may_be_a_broken_feed(known: list[str], new: list[str]) -> None:
    assert progression(known, new) is None


def test_only_named_cycles_make_a_calendar_column() -> None:
    """A column of seasons or weekdays holding one value is time; integer codes name no time."""
    assert cycle(["Sat", "Sun"]) == "weekdays"
    assert cycle(["12am", "1pm"]) == "hours"
    assert cycle(["1", "2", "3"]) is None
    assert cycle(["No", "Yes"]) is None
    assert cycle([]) is None
