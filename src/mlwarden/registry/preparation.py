"""The cleaning of a dataset replayed inside a model, so a served model takes the raw columns.

The assistant cleans a dataset as a plan of steps (``mlwarden.assistant.cleaning``): drop a
column, cap a text column's levels, fill missing values, encode categories. A model trained on
the cleaned data would expect the cleaned columns (``Sex`` as 0/1, no ``Name``), which no
caller sends. :class:`CleaningSteps` is the first step of the trained pipeline: it takes rows
as they are in the raw file and runs the same steps with the same code (:func:`apply_step`,
which the cleaning itself calls), so production rows are cleaned exactly as the training rows
were. Steps that drop rows (repeated rows, rows without a target) shaped the training data
only: a served model answers every row it is sent, so they are skipped here.

It lives in the registry because a model file names it: the skops loader
(``registry.artifacts``) trusts this one class beside scikit-learn's, and its state is plain
data (the steps as JSON-like dicts), never code.

>>> raw = pd.DataFrame({"name": ["a", "b", "c"], "sex": ["m", "f", None], "age": [20, None, 40]})
>>> steps = [{"action": "drop_column", "column": "name"},
...          {"action": "impute", "column": "age", "value": 30.0},
...          {"action": "impute", "column": "sex", "value": "f"},
...          {"action": "encode_binary", "column": "sex", "mapping": {"f": 0, "m": 1}}]
>>> clean = CleaningSteps(steps, input_kinds(raw), ["sex", "age"], []).fit(raw)
>>> clean.transform(raw).to_dict(orient="list")
{'sex': [1.0, 0.0, 0.0], 'age': [20.0, 30.0, 40.0]}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

__all__ = [
    "ROW_ACTIONS",
    "CleaningSteps",
    "apply_step",
    "category_text",
    "coerce_inputs",
    "input_kinds",
]

# steps that remove rows: they apply to the training data, never to a row sent to the model
ROW_ACTIONS = frozenset({"drop_duplicates", "drop_rows_missing_target"})


def category_text(value: Any) -> Any:
    """A category as the text it is looked up by (the gateway sends 3.0 for a category "3");
    a missing value stays missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return np.nan
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def apply_step(frame: pd.DataFrame, step: Mapping[str, Any]) -> pd.DataFrame:
    """``frame`` after one cleaning step (``action``, ``column`` and the step's own values:
    ``levels``, ``value``, ``mapping``). The row index is kept, so rows stay traceable."""
    action = step["action"]
    column = str(step.get("column"))  # None only for drop_duplicates, which names no column
    if action == "drop_column":
        return frame.drop(columns=[column])
    if action == "cap_levels":
        keep_levels = set(step["levels"])
        text = frame[column].map(lambda v: v if pd.isna(v) else str(v))
        capped = text.where(text.isna() | text.isin(keep_levels), "other")
        return frame.assign(**{column: capped})
    if action == "drop_rows_missing_target":
        return frame[frame[column].notna()]
    if action == "drop_duplicates":
        return frame.drop_duplicates()
    if action == "impute":
        return frame.assign(**{column: frame[column].fillna(step["value"])})
    if action == "encode_binary":
        mapping = step["mapping"]
        codes = frame[column].map(lambda v: mapping.get(str(v)))
        return frame.assign(**{column: codes.astype("Int64" if codes.isna().any() else "int64")})
    if action == "encode_onehot":
        position = list(frame.columns).index(column)
        text = frame[column].map(lambda v: v if pd.isna(v) else str(v))
        indicators = {
            f"{column}_{level}": (text == level).astype("int64") for level in step["levels"]
        }
        before = frame.iloc[:, :position]
        after = frame.iloc[:, position + 1 :]
        return pd.concat([before, pd.DataFrame(indicators, index=frame.index), after], axis=1)
    raise ValueError(f"unknown cleaning action {action!r}")


def input_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Each column of ``frame`` as the model will receive it: ``number``, ``boolean`` or
    ``text`` (what the gateway sends: a float, a bool or NaN, a string)."""
    kinds = {}
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_bool_dtype(series):
            kinds[str(name)] = "boolean"
        elif pd.api.types.is_numeric_dtype(series):
            kinds[str(name)] = "number"
        else:
            kinds[str(name)] = "text"
    return kinds


def _boolean(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return np.nan
    return bool(value)


def coerce_inputs(frame: pd.DataFrame, kinds: Mapping[str, str]) -> pd.DataFrame:
    """The columns ``kinds`` names, in its order, each as the gateway would send it: numbers
    as floats, booleans as bools, text as category text (missing values as NaN). Training
    rows go through this too, so a model sees the same values in training and in production."""
    columns: dict[str, pd.Series] = {}
    for name, kind in kinds.items():
        series = frame[name]
        if kind == "number":
            columns[name] = pd.to_numeric(series, errors="coerce").astype(float)
        elif kind == "boolean":
            columns[name] = series.map(_boolean).astype(object)
        else:
            columns[name] = series.map(category_text).astype(object)
    return pd.DataFrame(columns, index=frame.index)


class CleaningSteps(TransformerMixin, BaseEstimator):
    """Raw rows → the columns a model was trained on, by the cleaning steps of its dataset.

    ``steps``: the cleaning steps as dicts (row-dropping ones are skipped); ``kinds``: every raw
    input column in order with its kind (:func:`input_kinds`); ``features``: the cleaned
    columns the rest of the pipeline takes, in order; ``text_features``: those of them that
    are categories (passed as text, the others as floats).
    """

    def __init__(
        self,
        steps: Sequence[Mapping[str, Any]] = (),
        kinds: Mapping[str, str] | None = None,
        features: Sequence[str] = (),
        text_features: Sequence[str] = (),
    ) -> None:
        self.steps = steps
        self.kinds = kinds
        self.features = features
        self.text_features = text_features

    def fit(self, X: Any, y: Any = None) -> CleaningSteps:
        """Nothing to learn: the steps were decided on the whole dataset when it was cleaned."""
        names = list(self.kinds or {})
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = len(names)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        kinds = dict(self.kinds or {})
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X, dtype=object), columns=list(kinds))
        frame = coerce_inputs(X, kinds)
        for step in self.steps:
            if step["action"] not in ROW_ACTIONS:
                frame = apply_step(frame, step)
        text = set(self.text_features)
        out: dict[str, pd.Series] = {}
        for name in self.features:
            series = frame[name]
            if name in text:
                out[name] = series.map(category_text).astype(object)
            else:
                out[name] = pd.to_numeric(series, errors="coerce").astype(float)
        return pd.DataFrame(out, index=frame.index)

    def used_inputs(self) -> list[str]:
        """The raw inputs some output column comes from (the others the steps drop, or their
        every column is left out of ``features``), in input order."""
        made: dict[str, set[str]] = {name: {name} for name in self.kinds or {}}
        for step in self.steps:
            column = step.get("column")
            for columns in made.values():
                if column not in columns:
                    continue
                if step["action"] == "drop_column":
                    columns.discard(column)
                elif step["action"] == "encode_onehot":
                    columns.discard(column)
                    columns.update(f"{column}_{level}" for level in step["levels"])
        wanted = set(self.features)
        return [name for name, columns in made.items() if columns & wanted]

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "feature_names_in_")
