"""Do retrains age well on this stream? A retrain serves the weeks after it, not the day after.

The hindsight check (``agent.hindsight``) replays one retrain, fitted a few windows ago, on the
records since: the first windows of its life, when it is freshest. A retrain that goes out
serves long after that: its canary judges it over its first windows, and what it serves once
promoted begins about two windows after its fit. On a stream whose inputs keep moving (prices
that follow a market, demand that follows the weather) what a model learns from the newest
records is soon out of date, and its gain over the champion turns into a loss. On time-ordered
electricity (``control_electricity`` in time order) candidates fitted at windows 1-8 beat the
champion by up to 14 points in their first two windows and served 3 to 20 points worse in
most windows from their third on; the hindsight check at window 8 said "better" (about +0.03
over windows 6-8) and the retrain then asked was removed by its canary two windows later, 6.5
points worse (docs/benchmarks.md, "Retrains that age badly"). Where the change lasts (a new share of
positives, a flipped relation) every candidate fitted after it keeps its gain: on
``elec_label_shift`` the candidates fitted after the shift served 8 to 22 points better at
every age.

So before a retrain is asked for a drop, the retrain recipe is replayed at each of the last
``AGED_CANDIDATES`` windows that are at least ``AGE`` windows old: the candidate each would have
fitted (every labelled record that had arrived by then, the reference in front) is scored
against the champion on each whole window from its ``AGE``-th on, the same records for both.
Each (candidate, window) pair is one cell, each candidate one vote: its mean gain over its
cells. When the candidates' mean is below zero, retrains on this stream have served worse than
keeping the champion from the age at which a retrain starts to serve for good, and the retrain
is not asked (one vote per retrain, not per cell, so the oldest, scored on the most windows, do
not outweigh the newest). This is prequential evaluation of the retraining
policy itself with a delay (J. Gama, R. Sebastião and P. P. Rodrigues, "On evaluating stream
learning algorithms", Machine Learning 90, 2013): each candidate is scored only on records that
arrived after everything it learnt from, from the age at which it would serve. A window, not a
request, is the unit (as in ``agent.own_range``): on a drifting stream the records of one
window are alike, and the windows differ.

>>> from mlwarden.agent.aging import AgedGains, retrains_age_badly
>>> aged = AgedGains("accuracy", 2, [(4, 6, 0.005, 1000), (4, 7, 0.128, 1000),
...                                    (5, 7, 0.065, 1000), (5, 8, -0.029, 1000),
...                                    (3, 5, -0.146, 1000), (3, 6, -0.129, 1000)])
>>> print(retrains_age_badly(aged))  # doctest: +NORMALIZE_WHITESPACE
the 3 retrains replayed at windows 3-5 served -0.0177 accuracy against the champion on
average from their 2nd window after the fit on (fitted at 3: -0.1375, 4: +0.0665,
5: +0.0180; 6 windows scored): on this stream a retrain ages badly
>>> retrains_age_badly(AgedGains("accuracy", 2, [(5, 7, 0.09, 1000), (5, 8, 0.10, 1000)])) is None
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

__all__ = ["AGE", "AGED_CANDIDATES", "MIN_CELLS", "AgedGains", "retrains_age_badly"]

# a retrain serves for good from about this many windows after its fit: a canary of 10 % of
# the traffic gathers its 100+ labelled requests and is judged within the next window or two
AGE = 2
# how many past retrains are replayed (each is one fit of the retrain's recipe)
AGED_CANDIDATES = 6
# fewer (candidate, window) cells than this say nothing about how retrains age here
MIN_CELLS = 3
# a window with fewer labelled records than this is too noisy to be a cell
MIN_WINDOW_LABELS = 100


@dataclass(frozen=True)
class AgedGains:
    """Past retrains against the champion, by (window fitted at, window scored on)."""

    metric: str
    age: int
    # (window the candidate was fitted at, window scored on, gain over the champion, labels)
    cells: Sequence[tuple[int, int, float, int]]


def retrains_age_badly(aged: AgedGains) -> str | None:
    """Why a retrain is not asked (past retrains served worse than the champion on average,
    each one its mean gain over its cells), or None (they gained, or there are too few cells
    to tell)."""
    cells = [c for c in aged.cells if c[3] >= MIN_WINDOW_LABELS]
    if len(cells) < MIN_CELLS:
        return None
    by_candidate: dict[int, list[float]] = {}
    for fitted, _, gain, _ in cells:
        by_candidate.setdefault(fitted, []).append(gain)
    means = {fitted: fmean(gains) for fitted, gains in sorted(by_candidate.items())}
    mean = fmean(means.values())
    if mean >= 0:
        return None
    each = ", ".join(f"{fitted}: {gain:+.4f}" for fitted, gain in means.items())
    return (
        f"the {len(means)} retrains replayed at windows {min(means)}-{max(means)} served "
        f"{mean:+.4f} {aged.metric} against the champion on average from their "
        f"{_ordinal(aged.age)} window after the fit on (fitted at {each}; {len(cells)} "
        "windows scored): on this stream a retrain ages badly"
    )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
