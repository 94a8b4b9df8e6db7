"""New levels of a calendar: time moving on, not a broken feed.

A model trained on January to July has never seen the season "winter", the month "Aug" or the
year "2012"; in time order such a level arrives with the calendar, in every row of its weeks. A
broken feed (a weather code "Smoke" that no upstream ever sent) arrives as a new value among
the known ones. What tells them apart, from the reference's own values alone:

    A new level is the calendar moving on when the reference's levels and the new ones all
    name one calendar cycle (seasons, months, weekdays, hours of the day, quarters), or are
    all integers that together form one unbroken run (the new codes continue the observed
    range, as a month or a year counts on).

"Smoke" among "Clear", "Mist" and "Rain" names no calendar, and the code 99 among 1-4 leaves a
gap: both stay data-quality breaks (repairable); "winter" among "spring", "summer" and "fall"
is drift (retrain on it, never rewrite it).

For the same reason a column whose levels name a calendar cycle is no stuck feed for holding
one value over a window (``cycle``): a season lasts three months, a weekday a day, whatever
the reference's stretch of them was (a 1,500-row holdout of May to July holds "summer" for
fewer rows than a window of October holds "winter"). Integer codes are not exempt: a code
stuck at 3 names no time.

>>> progression(["spring", "summer", "fall"], ["winter"])
'seasons'
>>> progression(["Mon", "Tue", "Wednesday"], ["Sun"])
'weekdays'
>>> progression(["1", "2", "3", "4"], ["5"]), progression(["1", "2", "3", "4"], ["99"])
('integers 1-5', None)
>>> progression(["Clear", "Mist", "Light Rain"], ["Smoke"]) is None
True
>>> cycle(["summer", "fall"]), cycle(["1", "2"]), cycle(["Clear", "Mist"])
('seasons', None, None)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["cycle", "progression"]

_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

# each cycle's names, full and abbreviated, lower case
_CYCLES: dict[str, frozenset[str]] = {
    "seasons": frozenset({"winter", "spring", "summer", "fall", "autumn"}),
    "months": frozenset(_MONTHS + [m[:3] for m in _MONTHS] + ["sept"]),
    "weekdays": frozenset(
        _WEEKDAYS + [d[:3] for d in _WEEKDAYS] + ["tues", "weds", "thur", "thurs"]
    ),
    "quarters": frozenset({"q1", "q2", "q3", "q4"}),
}
# hours of the day: "6am", "12 pm", "06:00", "18:00:00"
_HOUR = re.compile(r"(0?[1-9]|1[0-2]) ?[ap]\.?m\.?|([01]?\d|2[0-3]):00(:00)?")
# an integer code, also as a float column writes it ("3.0")
_INTEGER = re.compile(r"[+-]?\d+(\.0*)?")


def _fits(cycle: str, value: str) -> bool:
    if cycle == "hours":
        return _HOUR.fullmatch(value) is not None
    return value in _CYCLES[cycle]


def _lower(values: Iterable[str]) -> set[str]:
    return {str(v).strip().lower() for v in values}


def cycle(levels: Iterable[str]) -> str | None:
    """The calendar cycle every one of ``levels`` names ("seasons", "months", "weekdays",
    "hours", "quarters"), or None (also for no levels)."""
    values = _lower(levels)
    if not values:
        return None
    return next((c for c in (*_CYCLES, "hours") if all(_fits(c, v) for v in values)), None)


def progression(known: Iterable[str], new: Iterable[str]) -> str | None:
    """What the ``new`` levels continue ("seasons", "integers 1-12", ...), or None when they
    may be a broken feed (the module's rule). Both must hold at least one level."""
    known_values, new_values = _lower(known), _lower(new)
    if not known_values or not new_values:
        return None
    values = known_values | new_values
    named = cycle(values)
    if named is not None:
        return named
    if all(_INTEGER.fullmatch(v) for v in values):
        numbers = sorted({int(float(v)) for v in values})
        if numbers[-1] - numbers[0] == len(numbers) - 1:
            return f"integers {numbers[0]}-{numbers[-1]}"
    return None
