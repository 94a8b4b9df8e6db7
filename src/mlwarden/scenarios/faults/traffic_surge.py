"""traffic_surge: requests arrive ``multiplier`` times as fast as the scenario's rate."""

from __future__ import annotations

from mlwarden.scenarios.faults.base import Effect, InjectedFault
from mlwarden.scenarios.faults.registry import register


@register
class TrafficSurge(InjectedFault):
    kind = "traffic_surge"
    effects = frozenset({Effect.RATE})
    needs = ("multiplier",)

    def rate_factor(self) -> float:
        return float(self.spec.multiplier or 1.0)
