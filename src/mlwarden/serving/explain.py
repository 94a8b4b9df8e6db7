"""Why a model said what it said about one instance: each feature's contribution to the
answer, measured against a reference point, for any predictor the gateway serves.

The reference point is the typical input: the mean of each numeric feature and the most
frequent value of the others, over the version's training sample (or recent inputs). The
explained output is the probability of the class the model predicted for the instance (a
classifier with probabilities), else the predicted value (a regressor).

- **Shapley values against the reference point** (``method="shapley"``), exact, for up to
  ``MAX_EXACT_FEATURES`` features: the model answers every mix of the instance's values and
  the reference's (2^n rows in one batch: 1,024 for 10 features; 85 ms for a logistic
  regression and 400 ms for a forest of 100 trees, against 21 and 206 ms by occlusion, on the
  shared 2-core machine at a load of 13, docs/benchmarks.md), and each feature gets its
  Shapley share of the change from the reference point's answer to the instance's. They add up to
  that change exactly, whatever the model (interactions are shared out fairly), and for a
  model additive in its inputs they are its own terms.
- **Occlusion** (``method="occlusion"``) beyond that, or when asked: each feature alone set
  back to its reference value (n + 2 rows), the answer's drop is its contribution. They need
  not add up to the change when features interact.

A remote model is explained the same way, through its endpoint, in batches of at most
``MAX_REMOTE_ROWS`` rows (so exact Shapley values for up to 6 features, occlusion beyond).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

from mlwarden.domain import FeatureType, ModelSpec
from mlwarden.errors import InvalidInput
from mlwarden.serving.predictors import Prediction, Predictor

__all__ = ["Explanation", "Method", "explain", "reference_point"]

MAX_EXACT_FEATURES = 10
MAX_REMOTE_ROWS = 64

Method = Literal["auto", "shapley", "occlusion"]


@dataclass(frozen=True)
class Explanation:
    """One instance's answer and each feature's share in it."""

    prediction: Any
    output: str  # what ``value`` is: "probability of 1", "predicted value"
    value: float
    reference_value: float  # the same output at the reference point
    method: str
    contributions: list[dict[str, Any]]  # feature, value, reference, contribution; largest first

    def as_dict(self) -> dict[str, Any]:
        return {
            "prediction": self.prediction,
            "output": self.output,
            "value": self.value,
            "reference_value": self.reference_value,
            "method": self.method,
            "contributions": self.contributions,
        }


def reference_point(spec: ModelSpec, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The typical input over ``rows``: each numeric feature's mean, each other feature's most
    frequent value (a feature missing from every row has no reference and is refused)."""
    point: dict[str, Any] = {}
    for feature in spec.features:
        values: list[Any] = [r[feature.name] for r in rows if r.get(feature.name) is not None]
        if feature.type in (FeatureType.NUMERIC, FeatureType.INTEGER):
            numbers = [float(v) for v in values if _finite(v)]
            if numbers:
                point[feature.name] = sum(numbers) / len(numbers)
                continue
        elif values:
            point[feature.name] = Counter(str(v) for v in values).most_common(1)[0][0]
            if feature.type is FeatureType.BOOLEAN:
                point[feature.name] = point[feature.name] in ("True", "true", "1")
            continue
        raise InvalidInput(
            f"no reference value for feature {feature.name!r}: the reference rows never hold it",
            feature=feature.name,
        )
    return point


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _output(prediction: Prediction, target: Any) -> float:
    if prediction.probabilities is not None:
        return float(prediction.probabilities.get(str(target), 0.0))
    if prediction.score is not None:
        return float(prediction.score)
    return float(prediction.prediction)


def explain(
    predictor: Predictor,
    spec: ModelSpec,
    instance: Mapping[str, Any],
    reference_rows: Sequence[Mapping[str, Any]],
    method: Method = "auto",
) -> Explanation:
    """Each feature's contribution to ``predictor``'s answer for ``instance`` (validated),
    against the reference point of ``reference_rows``."""
    names = spec.feature_names
    reference = reference_point(spec, reference_rows)
    remote = bool(getattr(predictor, "is_remote", False))
    exact_limit = 6 if remote else MAX_EXACT_FEATURES
    if method == "shapley" and len(names) > exact_limit:
        raise InvalidInput(
            f"exact Shapley values are computed for up to {exact_limit} features "
            f"({2**exact_limit} answers); {spec.name!r} has {len(names)}: use occlusion",
            features=len(names),
        )
    exact = method == "shapley" or (method == "auto" and len(names) <= exact_limit)
    first = predictor.predict([dict(instance)])[0]
    target = first.prediction
    if first.probabilities is not None:
        output = f"probability of {target}"
    else:
        try:
            float(first.score if first.score is not None else first.prediction)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"{spec.name!r} answers classes without probabilities: nothing to measure "
                "contributions on",
            ) from None
        output = "predicted value"

    def answer(rows: list[dict[str, Any]]) -> list[float]:
        step = MAX_REMOTE_ROWS if remote else len(rows)
        out: list[float] = []
        for k in range(0, len(rows), max(step, 1)):
            out += [_output(p, target) for p in predictor.predict(rows[k : k + step])]
        return out

    def mix(keep: Collection[str]) -> dict[str, Any]:
        return {n: instance.get(n) if n in keep else reference[n] for n in names}

    n = len(names)
    if exact:
        subsets = [frozenset(c) for size in range(n + 1) for c in combinations(names, size)]
        values = dict(zip(subsets, answer([mix(s) for s in subsets]), strict=True))
        weight = [
            math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)
        ]
        shares = {
            name: sum(
                weight[len(s)] * (values[s | {name}] - values[s]) for s in subsets if name not in s
            )
            for name in names
        }
        value, base = values[frozenset(names)], values[frozenset()]
    else:
        rows = [dict(instance), mix(()), *(mix([m for m in names if m != name]) for name in names)]
        outputs = answer(rows)
        value, base = outputs[0], outputs[1]
        shares = {name: value - out for name, out in zip(names, outputs[2:], strict=True)}
    contributions = [
        {
            "feature": name,
            "value": instance.get(name),
            "reference": reference[name],
            "contribution": shares[name],
        }
        for name in names
    ]
    contributions.sort(key=lambda c: abs(c["contribution"]), reverse=True)
    return Explanation(
        prediction=target,
        output=output,
        value=value,
        reference_value=base,
        method="shapley" if exact else "occlusion",
        contributions=contributions,
    )
