"""prediction_freeze: the model server answers one ``constant`` for everything (a stuck
model; default: the reference's majority class), with its probabilities all on it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlwarden.scenarios.faults.base import Effect, InjectedFault, Serving, Unattended, frozen
from mlwarden.scenarios.faults.registry import register
from mlwarden.serving.predictors import Prediction


@register
class PredictionFreeze(InjectedFault):
    kind = "prediction_freeze"
    effects = frozenset({Effect.ANSWERS})

    def constant(self, serving: Serving) -> object:
        return self.spec.constant if self.spec.constant is not None else serving.majority

    def serve(
        self, position: int, answer: Callable[[], list[Prediction]], serving: Serving
    ) -> list[Prediction] | None:
        constant = self.constant(serving)
        return [frozen(one, constant) for one in answer()]

    def unattended(self, answers: np.ndarray, active: np.ndarray, run: Unattended) -> None:
        answers[active] = self.constant(run.serving)
