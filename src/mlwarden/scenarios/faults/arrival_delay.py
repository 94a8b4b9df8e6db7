"""arrival_delay: records reach the monitor ``delay_s`` seconds after they were made (a late
log pipeline); the answers themselves are on time."""

from __future__ import annotations

from mlwarden.scenarios.faults.base import Effect, InjectedFault
from mlwarden.scenarios.faults.registry import register


@register
class ArrivalDelay(InjectedFault):
    kind = "arrival_delay"
    effects = frozenset({Effect.ARRIVAL})
    needs = ("delay_s",)

    def arrival_delay_s(self) -> float:
        return float(self.spec.delay_s or 0.0)
