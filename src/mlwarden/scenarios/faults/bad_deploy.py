"""bad_deploy: at ``start`` a release pipeline deploys a version trained on a broken label
join (the labels shuffled), replacing the live one; a rollback undoes it."""

from __future__ import annotations

import numpy as np

from mlwarden.scenarios.faults.base import Effect, InjectedFault, Unattended
from mlwarden.scenarios.faults.registry import register


@register
class BadDeploy(InjectedFault):
    kind = "bad_deploy"
    effects = frozenset({Effect.RELEASE})
    needs_bad_version = True

    def releases_at(self, position: int, batch: int) -> bool:
        start: int = self.spec.start
        return start <= position < start + batch

    def unattended(self, answers: np.ndarray, active: np.ndarray, run: Unattended) -> None:
        if run.bad is not None:
            answers[active] = run.bad.predict(run.inputs[active])
