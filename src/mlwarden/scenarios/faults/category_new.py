"""category_new: a share ``rate`` of a categorical feature takes a ``value`` never seen in
training (a new product, a new weather code)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlwarden.scenarios.faults.base import Effect, InjectedFault
from mlwarden.scenarios.faults.registry import register


@register
class CategoryNew(InjectedFault):
    kind = "category_new"
    effects = frozenset({Effect.ROWS})
    needs = ("feature", "value", "rate")

    def rows(
        self,
        frame: pd.DataFrame,
        reference: pd.DataFrame,
        mask: np.ndarray,
        target: str,
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        hit = mask & (rng.random(len(frame)) < self.spec.rate)
        column = frame[self.spec.feature].astype(object)
        column[hit] = self.spec.value
        frame[self.spec.feature] = column
        return frame
