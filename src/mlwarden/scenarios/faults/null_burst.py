"""null_burst: a share ``rate`` of a feature's values go missing (a broken feature pipeline)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlwarden.scenarios.faults.base import Effect, InjectedFault
from mlwarden.scenarios.faults.registry import register


@register
class NullBurst(InjectedFault):
    kind = "null_burst"
    effects = frozenset({Effect.ROWS})
    needs = ("feature", "rate")

    def rows(
        self,
        frame: pd.DataFrame,
        reference: pd.DataFrame,
        mask: np.ndarray,
        target: str,
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        name = self.spec.feature
        hit = mask & (rng.random(len(frame)) < self.spec.rate)
        column = frame[name].astype(object if frame[name].dtype == object else float)
        column[hit] = np.nan
        frame[name] = column
        return frame
