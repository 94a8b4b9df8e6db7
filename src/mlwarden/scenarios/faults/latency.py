"""latency: the model server takes ``add_ms`` longer per answer (constant, or exponential with
that mean)."""

from __future__ import annotations

import random

from mlwarden.scenarios.faults.base import Effect, InjectedFault
from mlwarden.scenarios.faults.registry import register


@register
class Latency(InjectedFault):
    kind = "latency"
    effects = frozenset({Effect.LATENCY})
    needs = ("add_ms",)

    def added_latency_ms(self, rng: random.Random) -> float:
        base = float(self.spec.add_ms or 0.0)
        return base if self.spec.distribution == "constant" else rng.expovariate(1 / base)
