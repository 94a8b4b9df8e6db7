"""Anomalies in the vector of window signals: explicit rules plus an Isolation Forest.

- :class:`SignalRule`: a bound on one signal (``error_rate <= 0.05``, ``n_records >= 100`` ...).
- :class:`SignalAnomalyDetector`: Isolation Forest (Liu, Ting & Zhou, 2008, "Isolation Forest",
  ICDM; scikit-learn's ``IsolationForest`` with a fixed ``random_state``) fitted on the history
  of *healthy* windows' signal vectors. It catches combinations no single rule names (throughput
  normal, latency normal, but the pair never seen together). A window is anomalous when its
  forest score is above both 0.5 (the paper's boundary between normal and anomalous) and the
  99th percentile of the healthy history's scores (so the threshold does not depend on the
  forest's contamination guess) *and*
  at least one signal sits ``min_deviation`` interquartile ranges from its healthy median (the
  forest's score saturates, so this keeps near-boundary healthy windows quiet). A signal
  ``2 * min_deviation`` interquartile ranges out is anomalous on its own.
  Nothing is judged until ``min_history`` healthy windows were seen.

>>> import numpy as np
>>> det = SignalAnomalyDetector()
>>> rng = np.random.default_rng(0)
>>> for _ in range(100):
...     det.observe({"a": rng.normal(), "b": rng.normal()})
>>> det.check({"a": 0.1, "b": -0.2}, window=100)
[]
>>> det.check({"a": 9.0, "b": 9.0}, window=101)[0].statistic
'isolation_forest'
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mlwarden.domain import Finding, FindingKind

__all__ = ["SignalAnomalyDetector", "SignalRule"]


@dataclass(frozen=True)
class SignalRule:
    """A bound on one signal; a window outside it is an anomaly."""

    signal: str
    minimum: float | None = None
    maximum: float | None = None

    def check(self, signals: Mapping[str, float | None], window: int | None) -> Finding | None:
        value = signals.get(self.signal)
        if value is None or not math.isfinite(value):
            return None
        if self.minimum is not None and value < self.minimum:
            bound, side = self.minimum, "below"
        elif self.maximum is not None and value > self.maximum:
            bound, side = self.maximum, "above"
        else:
            return None
        return Finding(
            kind=FindingKind.ANOMALY,
            detector="anomaly.rule",
            features=[self.signal],
            statistic=self.signal,
            score=float(value),
            threshold=float(bound),
            window=window,
            message=f"{self.signal} = {value:.4g} is {side} its bound {bound:.4g}",
            evidence={"rule": {"minimum": self.minimum, "maximum": self.maximum}},
        )


class SignalAnomalyDetector:
    """Isolation Forest over healthy windows' signal vectors, plus rules."""

    def __init__(
        self,
        rules: list[SignalRule] | None = None,
        min_history: int = 30,
        max_history: int = 500,
        min_deviation: float = 5.0,
        random_state: int = 0,
        ignore_prefixes: tuple[str, ...] = ("drift", "estimation_error."),
    ) -> None:
        self.rules = list(rules or [])
        self.min_history = min_history
        self.min_deviation = min_deviation
        self.random_state = random_state
        self.ignore_prefixes = ignore_prefixes
        self.history: deque[dict[str, float]] = deque(maxlen=max_history)
        self._model: object | None = None
        self._names: list[str] = []
        self._limit = 0.0
        self._stale = True
        self._fitted_on = 0

    def _usable(self, signals: Mapping[str, float | None]) -> dict[str, float]:
        return {
            k: float(v)
            for k, v in signals.items()
            if v is not None
            and isinstance(v, int | float)
            and math.isfinite(v)
            and not k.startswith(self.ignore_prefixes)
            and not k.endswith(("_ci_low", "_ci_high"))
        }

    def observe(self, signals: Mapping[str, float | None]) -> None:
        """Add a healthy window's signals to the history the forest learns from."""
        self.history.append(self._usable(signals))
        self._stale = True

    def _fit(self) -> bool:
        from sklearn.ensemble import IsolationForest

        if len(self.history) < self.min_history:
            return False
        grown = len(self.history) - self._fitted_on
        # Refitting 100 trees every window would dominate the monitor's cost; refit when the
        # history grew by a tenth (or 10 windows) since the last fit.
        if self._model is not None and (not self._stale or grown < max(10, self._fitted_on // 10)):
            return True
        # Only signals present in (nearly) every healthy window make a stable vector.
        counts: dict[str, int] = {}
        for row in self.history:
            for k in row:
                counts[k] = counts.get(k, 0) + 1
        self._names = sorted(k for k, c in counts.items() if c >= 0.9 * len(self.history))
        if not self._names:
            self._model = None
            return False
        x = self._matrix(list(self.history))
        self._mu = np.nanmedian(x, axis=0)
        spread = np.nanpercentile(x, 75, axis=0) - np.nanpercentile(x, 25, axis=0)
        self._sd = np.where(spread > 0, spread, np.maximum(np.abs(self._mu) * 0.01, 1e-9))
        z = self._standard(x)
        model = IsolationForest(n_estimators=100, random_state=self.random_state)
        model.fit(z)
        scores = -model.score_samples(z)
        self._limit = max(0.5, float(np.percentile(scores, 99)))
        self._model = model
        self._stale = False
        self._fitted_on = len(self.history)
        return True

    def _matrix(self, rows: list[dict[str, float]]) -> np.ndarray:
        return np.array([[row.get(k, np.nan) for k in self._names] for row in rows], dtype=float)

    def _standard(self, x: np.ndarray) -> np.ndarray:
        z = (x - self._mu) / self._sd
        return np.asarray(np.nan_to_num(np.clip(z, -50, 50), nan=0.0))

    def check(
        self, signals: Mapping[str, float | None], window: int | None = None
    ) -> list[Finding]:
        """Rule findings, plus an Isolation-Forest finding once the history is long enough."""
        findings = [f for rule in self.rules if (f := rule.check(signals, window)) is not None]
        if not self._fit() or self._model is None:
            return findings
        row = self._usable(signals)
        z = self._standard(self._matrix([row]))
        score = float(-self._model.score_samples(z)[0])  # type: ignore[attr-defined]
        worst = float(np.max(np.abs(z[0])))
        # A single signal far beyond anything healthy is anomalous even where the forest's
        # score saturates (one odd coordinate among many barely shortens isolation paths).
        if (score > self._limit and worst > self.min_deviation) or worst > 2 * self.min_deviation:
            deviations = sorted(zip(self._names, np.abs(z[0]), strict=True), key=lambda kv: -kv[1])
            top = [name for name, dev in deviations[:3] if dev > 2]
            shown = ", ".join(f"{name}={row.get(name, float('nan')):.4g}" for name in top)
            findings.append(
                Finding(
                    kind=FindingKind.ANOMALY,
                    detector="anomaly.isolation_forest",
                    features=top,
                    statistic="isolation_forest",
                    score=score,
                    threshold=self._limit,
                    window=window,
                    message=(
                        f"window signals are unlike the {len(self.history)} healthy windows "
                        f"(isolation-forest score {score:.3f} > limit "
                        f"{self._limit:.3f})" + (f"; most unusual: {shown}" if shown else "")
                    ),
                    evidence={
                        "history": len(self.history),
                        "deviations": {n: float(d) for n, d in deviations[:5]},
                    },
                )
            )
        return findings
