"""concept_change: the relation between inputs and label changes: a binary label flips, a
numeric one mirrors around the reference mean, everywhere or where ``feature`` is above
(below) ``threshold`` (default: its stream median). The inputs do not move."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlwarden.errors import InvalidInput
from mlwarden.scenarios.faults.base import Effect, InjectedFault
from mlwarden.scenarios.faults.registry import register


@register
class ConceptChange(InjectedFault):
    kind = "concept_change"
    effects = frozenset({Effect.LABELS})

    def rows(
        self,
        frame: pd.DataFrame,
        reference: pd.DataFrame,
        mask: np.ndarray,
        target: str,
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        spec = self.spec
        region = mask.copy()
        if spec.region in {"above", "below"}:
            if spec.feature is None:
                raise InvalidInput("concept_change with a region needs a feature")
            values = frame[spec.feature].to_numpy(dtype=float)
            cut = spec.threshold if spec.threshold is not None else float(np.nanmedian(values))
            region &= values > cut if spec.region == "above" else values <= cut
        labels = frame[target]
        classes = sorted(pd.unique(labels.dropna()))
        if len(classes) == 2:
            flipped = labels.map({classes[0]: classes[1], classes[1]: classes[0]})
            frame.loc[region, target] = flipped[region]
        elif pd.api.types.is_numeric_dtype(labels):
            centre = float(reference[target].mean())
            frame.loc[region, target] = 2 * centre - labels[region]
        else:
            raise InvalidInput("concept_change needs a binary or numeric target")
        return frame
