"""Mending requests at the gateway: the ``input_repair`` of a deployment.

When an upstream pipeline breaks (a null burst, a dropped column, a unit change, a new category
label), the model answers garbage-in with garbage-out, and a fallback model answers the same
broken inputs. Repairing the inputs before the model sees them keeps the champion: the
classic imputation of missing values by a central value of the training data (Little &
Rubin, *Statistical Analysis with Missing Data*, 2nd ed. 2002, ch. 4), a detected power-of-ten
factor undone, an unseen category mapped to the most frequent known one.

Each rule acts only on values broken the way it names (see ``domain.FeatureRepair``), so a
repair is harmless on clean requests. The request itself is recorded unrepaired.

>>> from mlwarden.domain import FeatureRepair
>>> plan = {"price": FeatureRepair(fill=52.0),
...         "demand": FeatureRepair(divide_by=100.0, low=0.0, high=1.0),
...         "weather": FeatureRepair(known=["clear", "rain"], unseen_to="clear")}
>>> mended = repair_instances([{"price": None, "demand": 42.0, "weather": "smoke"},
...                            {"price": 48.5, "demand": 0.4, "weather": "rain"}], plan)
>>> mended[0]
{'price': 52.0, 'demand': 0.42, 'weather': 'clear'}
>>> mended[1]  # clean values pass untouched
{'price': 48.5, 'demand': 0.4, 'weather': 'rain'}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mlwarden.domain import FeatureRepair

__all__ = ["repair_instances", "repair_value"]


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _predicted(rule: FeatureRepair, instance: Mapping[str, Any]) -> float | None:
    """The rule's regression fill from the request's other features; None when one is not a
    finite number."""
    if rule.fill_coefficients is None or rule.fill_intercept is None:
        return None
    total = rule.fill_intercept
    for name, coefficient in rule.fill_coefficients.items():
        value = instance.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            return None
        total += coefficient * value
    if rule.low is not None and rule.high is not None:
        total = min(max(total, rule.low), rule.high)
    return total


def repair_value(value: Any, rule: FeatureRepair, instance: Mapping[str, Any] | None = None) -> Any:
    """One value of ``instance``, mended by ``rule`` (unchanged when the rule does not apply)."""
    if _is_null(value):
        predicted = None if instance is None else _predicted(rule, instance)
        if predicted is not None:
            return predicted
        return rule.fill if rule.fill is not None else value
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if rule.divide_by is not None and number:
        low, high = rule.low, rule.high
        assert low is not None and high is not None  # FeatureRepair checks it
        if rule.divide_all and math.isfinite(value):
            return value / rule.divide_by
        if math.isfinite(value) and not low <= value <= high:
            scaled = value / rule.divide_by
            if low <= scaled <= high:
                return scaled
        return value
    if rule.known is not None and rule.unseen_to is not None:
        known, known_text = rule.known_values
        if value not in known and str(value) not in known_text:
            return rule.unseen_to
    return value


def repair_instances(
    instances: Sequence[Mapping[str, Any]], plan: Mapping[str, FeatureRepair]
) -> list[dict[str, Any]]:
    """New request dicts with ``plan`` applied; a feature missing from a request is taken from
    its old name (``renamed_from``) or added with its rule's fill (a dropped column); other keys
    are kept as they are."""
    out = []
    for instance in instances:
        mended = dict(instance)
        for name, rule in plan.items():
            if name not in mended and rule.renamed_from in mended:
                mended[name] = mended.pop(rule.renamed_from)
            mended[name] = repair_value(mended.get(name), rule, instance)
            if mended[name] is None and name not in instance:
                del mended[name]  # nothing to fill a dropped column with: still missing
        out.append(mended)
    return out
