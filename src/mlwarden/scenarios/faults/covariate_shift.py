"""covariate_shift: a numeric feature moves, by ``shift`` reference standard deviations and/or
a ``scale`` factor (the inputs drift; the relation to the label holds)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlwarden.errors import InvalidInput
from mlwarden.scenarios.faults.base import Effect, FaultSpec, InjectedFault
from mlwarden.scenarios.faults.registry import register


@register
class CovariateShift(InjectedFault):
    kind = "covariate_shift"
    effects = frozenset({Effect.ROWS})
    needs = ("feature",)

    @classmethod
    def check(cls, spec: FaultSpec) -> str | None:
        if spec.shift is None and spec.scale is None:
            return "fault 'covariate_shift' needs shift (std units) or scale (factor)"
        return None

    def rows(
        self,
        frame: pd.DataFrame,
        reference: pd.DataFrame,
        mask: np.ndarray,
        target: str,
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        spec = self.spec
        column = frame[spec.feature]
        if not pd.api.types.is_numeric_dtype(column):
            raise InvalidInput(f"covariate_shift needs a numeric feature; {spec.feature!r} is not")
        values = column.to_numpy(dtype=float, copy=True)
        if spec.scale is not None:
            values[mask] = values[mask] * spec.scale
        if spec.shift is not None:
            std = float(np.nanstd(reference[spec.feature].to_numpy(dtype=float))) or 1.0
            values[mask] = values[mask] + spec.shift * std
        frame[spec.feature] = values
        return frame
