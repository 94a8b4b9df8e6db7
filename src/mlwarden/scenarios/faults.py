"""Fault injection on the rows of a stream: the data-side faults of a scenario.

Serving-side faults (latency, errors, bad deploy, frozen predictions, late arrival, traffic
surges) change how the model answers or when records arrive; the simulator applies those.

>>> import pandas as pd
>>> from mlwarden.scenarios.spec import Fault
>>> rows = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
>>> fault = Fault(kind="unit_change", feature="x", factor=100, start=2)
>>> inject(rows, rows, [fault], "y", seed=0)["x"].tolist()
[1.0, 2.0, 300.0, 400.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlwarden.errors import InvalidInput
from mlwarden.scenarios.spec import DATA_FAULTS, Fault


def active_mask(fault: Fault, length: int) -> np.ndarray:
    """Boolean mask of the stream positions where ``fault`` is active."""
    positions = np.arange(length)
    end = length if fault.end is None else min(fault.end, length)
    return (positions >= fault.start) & (positions < end)


def inject(
    stream: pd.DataFrame,
    reference: pd.DataFrame,
    faults: Sequence[Fault],
    target: str,
    *,
    seed: int,
) -> pd.DataFrame:
    """Return a copy of ``stream`` (positions 0..n-1) with every data fault applied.

    Schema breaks are not applied here: they change the shape of individual requests, so the
    simulator applies them when it builds each request (see :func:`break_schema`).
    """
    rng = np.random.default_rng(seed)
    frame = stream.reset_index(drop=True).copy()
    for fault in faults:
        if fault.kind not in DATA_FAULTS or fault.kind == "schema_break":
            continue
        mask = active_mask(fault, len(frame))
        if fault.feature is not None and fault.feature not in frame.columns:
            raise InvalidInput(
                f"fault {fault.kind!r}: feature {fault.feature!r} is not a column of the dataset"
            )
        apply = _APPLY[fault.kind]
        frame = apply(frame, reference, fault, mask, target, rng)
    return frame


def _covariate_shift(frame, reference, fault, mask, target, rng):
    column = frame[fault.feature]
    if not pd.api.types.is_numeric_dtype(column):
        raise InvalidInput(f"covariate_shift needs a numeric feature; {fault.feature!r} is not")
    values = column.to_numpy(dtype=float, copy=True)
    if fault.scale is not None:
        values[mask] = values[mask] * fault.scale
    if fault.shift is not None:
        std = float(np.nanstd(reference[fault.feature].to_numpy(dtype=float))) or 1.0
        values[mask] = values[mask] + fault.shift * std
    frame[fault.feature] = values
    return frame


def _null_burst(frame, reference, fault, mask, target, rng):
    hit = mask & (rng.random(len(frame)) < fault.rate)
    column = frame[fault.feature].astype(object if frame[fault.feature].dtype == object else float)
    column[hit] = np.nan
    frame[fault.feature] = column
    return frame


def _unit_change(frame, reference, fault, mask, target, rng):
    values = frame[fault.feature].to_numpy(dtype=float, copy=True)
    values[mask] = values[mask] * fault.factor
    frame[fault.feature] = values
    return frame


def _category_new(frame, reference, fault, mask, target, rng):
    hit = mask & (rng.random(len(frame)) < fault.rate)
    column = frame[fault.feature].astype(object)
    column[hit] = fault.value
    frame[fault.feature] = column
    return frame


def _concept_change(frame, reference, fault, mask, target, rng):
    region = mask.copy()
    if fault.region in {"above", "below"}:
        if fault.feature is None:
            raise InvalidInput("concept_change with a region needs a feature")
        values = frame[fault.feature].to_numpy(dtype=float)
        cut = fault.threshold if fault.threshold is not None else float(np.nanmedian(values))
        region &= values > cut if fault.region == "above" else values <= cut
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


def _label_shift(frame, reference, fault, mask, target, rng):
    segment = np.flatnonzero(mask)
    if len(segment) == 0:
        return frame
    labels = frame[target].to_numpy()
    classes = sorted(pd.unique(frame[target].dropna()))
    if len(classes) != 2:
        raise InvalidInput("label_shift needs a binary target")
    positive = classes[1]
    pos = segment[labels[segment] == positive]
    neg = segment[labels[segment] != positive]
    if len(pos) == 0 or len(neg) == 0:
        raise InvalidInput("label_shift: the segment holds only one class")
    n_pos = round(len(segment) * fault.positive_share)
    chosen = np.concatenate(
        [rng.choice(pos, n_pos, replace=True), rng.choice(neg, len(segment) - n_pos, replace=True)]
    )
    rng.shuffle(chosen)
    replacement = frame.iloc[chosen].reset_index(drop=True)
    frame.iloc[segment] = replacement.to_numpy()
    return frame


_APPLY = {
    "covariate_shift": _covariate_shift,
    "null_burst": _null_burst,
    "unit_change": _unit_change,
    "category_new": _category_new,
    "concept_change": _concept_change,
    "label_shift": _label_shift,
}


def break_schema(instance: dict, fault: Fault) -> dict:
    """The request as an upstream schema change sends it: a feature dropped, renamed or retyped."""
    broken = dict(instance)
    name = fault.feature or ""
    if name not in broken:
        return broken
    if fault.mode == "drop":
        broken.pop(name)
    elif fault.mode == "rename":
        broken[fault.new_name or f"{name}_v2"] = broken.pop(name)
    elif fault.mode == "retype":
        value = broken[name]
        broken[name] = "n/a" if value is None else f"{value} (as text)"
    return broken
