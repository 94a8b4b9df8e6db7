"""Is a drop beyond the champion's own range? A retrain answers a change, not a season.

A performance drop is found against the reference, with the sampling noise of a window for its
scale (``detect.performance_change``). On a stream that drifts with the seasons the champion's
metric moves far more than that from one window to the next, and a drop of a few windows is
often no more than it moved before anything was called a change. A retrain fitted on such a
drop learns one stretch of the season and is judged on the next: on the New York flights in
time order the champion scored between 0.665 and 0.869 accuracy on the nine windows before the
summer's concept-drift incident (window 9), 0.70 on the records since; the retrain on the
records after the change that was asked there would have served between +0.002 and -0.050 over
the next 18 windows (docs/benchmarks.md, "A concept-drift retrain judged on evidence"). On
time-ordered electricity a retrain whose canary then removed it found the same: its validation
and its hindsight both said better, and what it served was within noise of the champion.

So before a retrain is asked for a drop with a change point, the champion's own answers are
replayed on the labelled records of the whole windows before the change (those with no
data-quality finding: a broken feed is no season) and on those since. If the metric since the
change is no lower than the champion's worst window before it, the drop is within the range
the champion already showed on this stream without any change: natural drift that a retrain
does not durably fix. No parameter is tuned: the worst window is the champion's own.

A window's metric over its labelled records is the statistical unit here, not a request: on a
drifting stream records of one window are alike, and the spread between windows, not the
binomial error inside one, is what a season moves. This is the overdispersion of a binomial
rate (D. A. Williams, "Extra-binomial variation in logistic linear models", Applied Statistics
31, 1982): the within-window error understates the variation a level shows over time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["OwnRange", "beyond_own_range"]

# fewer labelled records than this make a window's metric too noisy to bound the range with
MIN_WINDOW_LABELS = 100


@dataclass(frozen=True)
class OwnRange:
    """The champion's metric (higher is better) on its labelled records, by whole window before
    the change and pooled since."""

    metric: str
    change_window: int
    before: Sequence[tuple[int, float, int]]  # (window, metric, labelled records)
    since: float | None  # over the labelled records since the change (None: none yet)
    since_labels: int = 0


def beyond_own_range(own: OwnRange) -> str | None:
    """None when the drop since the change lies below the champion's worst window before it
    (or there is nothing to compare with); otherwise why a retrain is not asked."""
    before = [b for b in own.before if b[2] >= MIN_WINDOW_LABELS]
    if not before or own.since is None:
        return None
    window, worst, _ = min(before, key=lambda b: b[1])
    if own.since < worst:
        return None
    best = max(b[1] for b in before)
    return (
        f"the champion's {own.metric} since the change in window {own.change_window}, "
        f"{own.since:.4f} on {own.since_labels} labelled records, is within its own range on "
        f"the {len(before)} windows before it ({worst:.4f} in window {window} to {best:.4f}): "
        "natural drift, which a retrain does not durably fix"
    )
