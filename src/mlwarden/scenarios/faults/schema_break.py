"""schema_break: upstream changes the request's schema: ``feature`` is dropped, renamed to
``new_name`` or sent as text, on a share ``rate`` of the requests (default one in two). The
rows stay as they are; the client sends them broken, and the gateway refuses what it cannot
read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlwarden.scenarios.faults.base import Effect, FaultSpec, InjectedFault
from mlwarden.scenarios.faults.registry import register


@register
class SchemaBreak(InjectedFault):
    kind = "schema_break"
    effects = frozenset({Effect.REQUESTS})
    needs = ("feature", "mode")

    @classmethod
    def check(cls, spec: FaultSpec) -> str | None:
        if spec.mode == "rename" and not spec.new_name:
            return "schema_break with mode 'rename' needs new_name"
        return None

    def request(self, instance: dict[str, Any], draw: Callable[[], float]) -> dict[str, Any]:
        rate = self.spec.rate if self.spec.rate is not None else 0.5
        return break_schema(instance, self.spec) if draw() < rate else instance


def break_schema(instance: dict[str, Any], spec: FaultSpec) -> dict[str, Any]:
    """The request as an upstream schema change sends it: a feature dropped, renamed or
    retyped."""
    broken = dict(instance)
    name = spec.feature or ""
    if name not in broken:
        return broken
    if spec.mode == "drop":
        broken.pop(name)
    elif spec.mode == "rename":
        broken[spec.new_name or f"{name}_v2"] = broken.pop(name)
    elif spec.mode == "retype":
        value = broken[name]
        broken[name] = "n/a" if value is None else f"{value} (as text)"
    return broken
