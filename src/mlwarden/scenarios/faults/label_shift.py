"""label_shift: the share of the positive class becomes ``positive_share``: the period's rows
are resampled by class (prior shift: the classes' own inputs do not change)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlwarden.errors import InvalidInput
from mlwarden.scenarios.faults.base import Effect, InjectedFault
from mlwarden.scenarios.faults.registry import register


@register
class LabelShift(InjectedFault):
    kind = "label_shift"
    effects = frozenset({Effect.ROWS, Effect.LABELS})
    needs = ("positive_share",)

    def rows(
        self,
        frame: pd.DataFrame,
        reference: pd.DataFrame,
        mask: np.ndarray,
        target: str,
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        segment = np.flatnonzero(mask)
        if len(segment) == 0:
            return frame
        labels = frame[target].to_numpy()
        classes = sorted(pd.unique(frame[target].dropna()))
        if len(classes) != 2:
            raise InvalidInput("label_shift needs a binary target")
        positive = classes[1]
        pos = segment[labels[segment] == positive]
        neg = segment[labels[segment] != positive]
        if len(pos) == 0 or len(neg) == 0:
            raise InvalidInput("label_shift: the segment holds only one class")
        n_pos = round(len(segment) * self.spec.positive_share)
        chosen = np.concatenate(
            [
                rng.choice(pos, n_pos, replace=True),
                rng.choice(neg, len(segment) - n_pos, replace=True),
            ]
        )
        rng.shuffle(chosen)
        replacement = frame.iloc[chosen].reset_index(drop=True)
        frame.iloc[segment] = replacement.to_numpy()
        return frame
