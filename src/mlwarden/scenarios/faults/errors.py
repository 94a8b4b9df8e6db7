"""errors: the model server fails a share ``rate`` of its calls; the gateway answers them from
the fallback version, when there is one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlwarden.scenarios.faults.base import Effect, InjectedFault, Serving, Unattended
from mlwarden.scenarios.faults.registry import register
from mlwarden.serving.predictors import Prediction, PredictionError


@register
class Errors(InjectedFault):
    kind = "errors"
    effects = frozenset({Effect.ANSWERS})
    needs = ("rate",)

    def serve(
        self, position: int, answer: Callable[[], list[Prediction]], serving: Serving
    ) -> list[Prediction] | None:
        if serving.fails(position, self.spec.rate or 0.0):
            raise PredictionError("inference failed: injected error (scenario)")
        return None

    def unattended(self, answers: np.ndarray, active: np.ndarray, run: Unattended) -> None:
        failed = np.zeros(len(answers), dtype=bool)
        for start in range(0, len(answers), run.batch):
            if active[start] and run.serving.fails(start, self.spec.rate or 0.0):
                failed[start : start + run.batch] = True
        if run.fallback is None:
            answers[failed] = None
        elif failed.any():
            answers[failed] = run.fallback.predict(run.inputs[failed])
