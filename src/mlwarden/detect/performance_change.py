"""A change point in the performance series itself: in which window did the model get worse.

The engine hands over one value per window: the metric measured on the window's labels or,
before labels, its CBPE estimate. The detector runs a two-sided CUSUM (Page, 1954, "Continuous
inspection schemes", Biometrika 41) on those values against the level of the current regime,
standardised by the reference spread at the window's size (``MetricSpread``). The first regime
is the reference; against it a window's value is compared with a level measured on the
reference's own rows, so a shift within that level's standard error is allowed for too (see
``_allowance``). When the sum of shortfalls crosses ``threshold`` a new regime starts at the
most likely change point inside the run (see ``_Side.change``), with the mean of the values
since then as its level; the sums restart, so a second drop (a bad deploy during a
slow decline) is a change of its own with its own start. A rise starts a new regime silently.

Every window of a regime that began with a drop gets a finding, with the window where the drop
started in ``evidence["change_window"]``: the drop persists until a later change lifts it. The
inputs are not looked at: the performance changed, whatever the data did.

Each shift smaller than ``min_shift`` (the metric's tolerance, and at least one reference
standard deviation) is allowed for (the CUSUM's reference value k is half of it), so neither
sampling noise nor a drop nobody would act on accumulates.

>>> from mlwarden.stats.performance import MetricSpread
>>> spread = MetricSpread("accuracy", 0.90, 0.30)          # std 0.01 at 900 rows
>>> det = PerformanceChangeDetector("accuracy", spread, min_shift=0.02)
>>> series = [0.90, 0.91, 0.89, 0.90, 0.84, 0.85, 0.84]
>>> found = [det.update(w, v, n=900) for w, v in enumerate(series)]
>>> [f is not None for f in found]
[False, False, False, False, True, True, True]
>>> found[-1].evidence["change_window"], round(found[-1].evidence["level_after"], 3)
(4, 0.843)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from mlwarden.domain import Finding, FindingKind
from mlwarden.stats.performance import HIGHER_IS_BETTER, MetricSpread

__all__ = ["PerformanceChangeDetector"]

# a drop against the reference is one only beyond this many standard errors of the difference,
# the reference level's own error included (``PerformanceChangeDetector._beyond_reference``)
REFERENCE_SIGMAS = 3.0


@dataclass(frozen=True)
class _Side:
    """One side of the CUSUM: its sum and the run of windows since it last left zero, each as
    (window, value, standardised shortfall) for dating the change and the new level."""

    total: float = 0.0
    run: tuple[tuple[int, float, float], ...] = ()

    def step(self, window: int, value: float, shortfall: float, k: float, longest: int) -> _Side:
        # a sum at zero restarts the run here: a change would begin at this window
        run = self.run if self.total > 0.0 else ()
        return _Side(
            max(0.0, self.total + shortfall - k), (*run, (window, value, shortfall))[-longest:]
        )

    def change(self) -> tuple[int, float]:
        """(first window, mean value) of the change inside the run: the split that maximises
        the standardised shortfall after it, (sum of shortfalls)^2 / windows, which is the
        likelihood-ratio estimate of a mean shift's start (Hinkley, 1971, "Inference about the
        change-point from cumulative sum tests", Biometrika 58); the CUSUM's own estimate (where
        the sum left zero) tends to take in a noisy window just before the change."""
        best, best_at, tail = -1.0, 0, 0.0
        for i in range(len(self.run) - 1, -1, -1):
            tail += self.run[i][2]
            score = tail * tail / (len(self.run) - i) if tail > 0 else 0.0
            if score >= best:
                best, best_at = score, i
        values = [v for _, v, _ in self.run[best_at:]]
        return self.run[best_at][0], sum(values) / len(values)


@dataclass(frozen=True)
class _State:
    """The current regime and the two running sums; replayable from any earlier copy."""

    level: float
    start: int | None = None  # None: the reference regime
    before: float | None = None
    dropped: bool = False
    level_sum: float = 0.0
    level_count: int = 0
    down: _Side = _Side()
    up: _Side = _Side()


class PerformanceChangeDetector:
    """Two-sided CUSUM with restarts on one metric's per-window series; state across windows.

    ``update(window, value, n)`` records window ``window``'s value (measured on ``n`` labelled
    rows, or estimated on ``n`` rows) and returns the finding for that window, or None. A later
    update of the same window (its labels arrived) replaces the value and replays the series
    from the oldest window kept (``keep``), so late labels move the change point too.
    """

    def __init__(
        self,
        metric: str,
        spread: MetricSpread,
        min_shift: float = 0.0,
        threshold: float = 5.0,
        keep: int = 50,
    ) -> None:
        if threshold <= 0:
            raise ValueError("the CUSUM threshold must be positive")
        self.metric = metric
        self.spread = spread
        self.min_shift = max(0.0, min_shift)
        self.threshold = threshold
        self.keep = max(1, keep)
        self.higher = metric in HIGHER_IS_BETTER
        self._base = _State(level=spread.level)
        self._values: dict[int, tuple[float, int, bool]] = {}

    def update(
        self, window: int, value: float | None, n: int, estimated: bool = False
    ) -> Finding | None:
        """Record one window's value; the finding for that window (None when no drop holds)."""
        if value is None or not math.isfinite(value) or n <= 0:
            self._values.pop(window, None)
            return None
        self._values[window] = (float(value), int(n), estimated)
        while len(self._values) > self.keep:
            oldest = min(self._values)
            self._base = self._step(self._base, oldest, *self._values.pop(oldest)[:2])
        state = self._base
        for w in sorted(self._values):
            if w > window:
                break
            state = self._step(state, w, *self._values[w][:2])
        return self._finding(state, window) if window in self._values else None

    def _allowance(self, n: int, reference: bool = False) -> float:
        """Half the smallest shift worth detecting (the metric's tolerance, or one window's
        standard deviation), and against the reference the standard error of the reference
        level itself, the two combined as independent errors. That level is an estimate on
        the reference's rows whose error is the same in every window, so it adds up in the
        sums: with 1,000-row references and 1,000-row windows at accuracy 0.85, 21 of 200
        stationary streams raised a change within 10 windows with the level taken as exact, 5
        with its error allowed for (the fleet benchmark saw a quarter of 100 models with a
        false incident by minute 2); a 117-row Titanic holdout's ROC AUC is off by about 0.04
        either way. A 10,000-row reference moves the allowance by 3 % (0.0100 → 0.0103)."""
        own = max(self.min_shift, self.spread.std(n)) / 2
        return math.hypot(own, self.spread.level_std()) if reference else own

    def _beyond_reference(self, reference: float, level: float, n: int, count: int) -> bool:
        """True when a drop from the reference level to ``level`` (the mean of ``count``
        windows of ``n`` rows) is larger than ``REFERENCE_SIGMAS`` standard errors of the
        difference, the reference level's own error included.

        That error is the same in every window: the allowance (``_allowance``) keeps noise
        from adding up, but a reference level off by more than the allowance makes every
        window's shortfall positive, so such a stream raises a change sooner or later, however
        stationary: with 1,000-row references and windows, 43 of 400 stationary streams within
        40 windows, and still more with every window after (docs/benchmarks.md, "A fleet").
        Only a drop the reference's error cannot explain is one; a smaller one is weighed again
        as windows come (its level's error shrinks to the reference's own)."""
        drop = (reference - level) if self.higher else (level - reference)
        error = math.hypot(self.spread.level_std(), self.spread.std(n) / math.sqrt(max(count, 1)))
        return drop > REFERENCE_SIGMAS * error

    def _step(self, state: _State, window: int, value: float, n: int) -> _State:
        reference = state.start is None
        sigma = max(self.spread.std(n), 1e-12)
        k = self._allowance(n, reference) / sigma
        worse = ((state.level - value) if self.higher else (value - state.level)) / sigma
        down = state.down.step(window, value, worse, k, self.keep)
        up = state.up.step(window, value, -worse, k, self.keep)
        for side, dropped in ((down, True), (up, False)):
            if side.total >= self.threshold and side.run:
                start, level = side.change()
                count = sum(1 for w, _, _ in side.run if w >= start)
                if (
                    reference
                    and dropped
                    and not self._beyond_reference(state.level, level, n, count)
                ):
                    # the reference level may be what is off: the reference regime goes on,
                    # its sums too, and the drop is weighed again with the next window
                    return replace(state, down=down, up=up)
                return _State(
                    level=level,
                    start=start,
                    before=state.level,
                    dropped=dropped,
                    level_sum=level * count,
                    level_count=count,
                )
        if state.start is None:  # the reference regime keeps the reference level
            return replace(state, down=down, up=up)
        total, count = state.level_sum + value, state.level_count + 1
        return replace(
            state, level=total / count, level_sum=total, level_count=count, down=down, up=up
        )

    def _finding(self, state: _State, window: int) -> Finding | None:
        if not state.dropped or state.start is None or state.before is None:
            return None
        value, n, estimated = self._values[window]
        drop = (state.before - state.level) if self.higher else (state.level - state.before)
        allowance = self._allowance(n)
        kind = "estimated " if estimated else ""
        return Finding(
            kind=FindingKind.CONCEPT_DRIFT,
            detector="concept.performance_change",
            statistic=f"{self.metric}_change",
            score=float(drop),
            threshold=float(allowance),
            window=window,
            message=(
                f"{self.metric} changed at window {state.start}: from {state.before:.3f} "
                f"to {state.level:.3f} since ({kind}{value:.3f} in this window, CUSUM)"
            ),
            evidence={
                "metric": self.metric,
                "change_window": state.start,
                "level_before": state.before,
                "level_after": state.level,
                "reference": state.before,
                "value": value,
                "n": n,
                "estimated": estimated,
                "cusum_threshold": self.threshold,
                "inputs_stable": None,
                "performance_drop": float(
                    drop if self.higher else drop / max(abs(state.before), 1e-12)
                ),
            },
        )
