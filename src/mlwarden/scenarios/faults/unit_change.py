"""unit_change: a numeric feature arrives in another unit, multiplied by ``factor``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlwarden.scenarios.faults.base import Effect, InjectedFault
from mlwarden.scenarios.faults.registry import register


@register
class UnitChange(InjectedFault):
    kind = "unit_change"
    effects = frozenset({Effect.ROWS})
    needs = ("feature", "factor")

    def rows(
        self,
        frame: pd.DataFrame,
        reference: pd.DataFrame,
        mask: np.ndarray,
        target: str,
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        values = frame[self.spec.feature].to_numpy(dtype=float, copy=True)
        values[mask] = values[mask] * self.spec.factor
        frame[self.spec.feature] = values
        return frame
