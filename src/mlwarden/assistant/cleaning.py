"""Cleaning a dataset: a plan of explicit steps, shown before it runs, applied deterministically.

The rules are the usual first pass of a data scientist, each with its reason in the plan:

- drop identifier-like columns (an ``id`` name or a row counter, or text unique on almost every
  row such as a passenger's name) — they teach a model nothing that generalises;
- drop mostly-empty columns (more than ``max_missing`` of the rows missing) and constant ones;
- drop free-text columns (distinct on more than half the rows) and cap other text columns
  with many levels to their ``max_levels - 1`` most frequent ones plus ``"other"``, so a column
  with a thousand levels cannot explode one-hot encoding;
- drop rows repeated whole (equal in every column of the file, before any column is dropped:
  rows equal only on the columns left are different records), and rows whose kept (target)
  column is missing;
- on request (``drop_non_numeric``), drop every column that is not a number;
- impute numbers with the median and categories with the most frequent value;
- encode categoricals: two levels become 0/1, more become one-hot indicator columns.

>>> frame = pd.DataFrame({"id": range(6), "age": [20, None, 40, 35, 30, 50],
...                       "sex": ["m", "f", "f", "f", "m", None]})
>>> plan = plan_cleaning(frame)
>>> [step.action for step in plan.steps]
['drop_column', 'impute', 'impute', 'encode_binary']
>>> plan.apply(frame).columns.tolist()
['age', 'sex']
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlwarden.errors import InvalidInput
from mlwarden.registry.preparation import apply_step

Action = Literal[
    "drop_column",
    "cap_levels",
    "drop_rows_missing_target",
    "drop_duplicates",
    "impute",
    "encode_binary",
    "encode_onehot",
]
_ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|guid|key|index)$|^(id|index)[_\s-]|[a-z]Id$|ID$")


@dataclass
class Step:
    """One change of the plan, with why it is made and what it needs to be replayed."""

    action: Action
    column: str | None
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f" {self.column!r}" if self.column else ""
        return f"{self.action.replace('_', ' ')}{where}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "column": self.column, "reason": self.reason, **self.detail}


@dataclass
class CleaningPlan:
    """The steps that turn a dataset into its cleaned version, in the order they run."""

    steps: list[Step]
    rows_before: int
    rows_after: int
    columns_before: list[str]
    columns_after: list[str]

    def describe(self) -> list[str]:
        if not self.steps:
            return ["nothing to clean: no identifiers, gaps, duplicates or text columns found"]
        return [step.describe() for step in self.steps]

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": [step.as_dict() for step in self.steps],
            "rows_before": self.rows_before,
            "rows_after": self.rows_after,
            "columns_before": self.columns_before,
            "columns_after": self.columns_after,
        }

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Run the steps on ``frame`` (the frame the plan was made for)."""
        out = frame.copy()
        for step in self.steps:
            out = _run(out, step)
        return out.reset_index(drop=True)


def is_identifier(series: pd.Series, name: str) -> str | None:
    """Why ``series`` looks like a row identifier, or None when it does not."""
    values = series.dropna()
    if len(values) < 2:
        return None
    unique_ratio = values.nunique() / len(values)
    if _ID_NAME.search(name) and unique_ratio >= 0.95:
        return f"named like an identifier and unique on {unique_ratio:.0%} of rows"
    if pd.api.types.is_integer_dtype(values) and unique_ratio == 1.0:
        ordered = np.sort(values.to_numpy())
        if len(ordered) > 2 and bool(np.all(np.diff(ordered) == 1)):
            return "a row counter (consecutive integers, all distinct)"
    if _is_text(values) and unique_ratio >= 0.95:
        return f"text unique on {unique_ratio:.0%} of rows (a name or code, not a category)"
    return None


def _is_text(series: pd.Series) -> bool:
    return bool(
        pd.api.types.is_object_dtype(series)
        or isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(series)
    ) and not pd.api.types.is_bool_dtype(series)


def plan_cleaning(
    frame: pd.DataFrame,
    keep: Sequence[str] = (),
    *,
    max_missing: float = 0.5,
    max_levels: int = 20,
    free_text_ratio: float = 0.5,
    drop_non_numeric: bool = False,
) -> CleaningPlan:
    """Decide the cleaning steps for ``frame``; ``keep`` columns (a target) are never dropped,
    imputed or encoded. ``drop_non_numeric`` (the user asked for it) drops every column that
    is not a number (booleans are numbers) instead of encoding it."""
    unknown = [c for c in keep if c not in frame.columns]
    if unknown:
        raise InvalidInput(
            f"unknown column(s) {unknown}; columns are: {list(frame.columns)}", columns=unknown
        )
    if max_levels < 2:
        raise InvalidInput("max_levels must be at least 2")
    work = frame.copy()
    steps: list[Step] = []

    def add(step: Step) -> None:
        nonlocal work
        steps.append(step)
        work = _run(work, step)

    # a duplicate is a record repeated whole, every column of the file alike: judged before any
    # column goes, since rows equal on what is left are different records (Titanic has no
    # repeated row, but 111 passengers equal on the columns left once the names, tickets and
    # cabins go, which moved its survival rate from 38.4 % to 41.3 %)
    duplicates = int(work.duplicated().sum())
    if duplicates:
        add(
            Step(
                "drop_duplicates",
                None,
                f"{duplicates} rows repeat an earlier row in every column",
                {"rows": duplicates},
            )
        )
    for column in list(work.columns):
        if column in keep:
            continue
        series = work[column]
        rows = len(series)
        missing = float(series.isna().mean()) if rows else 0.0
        reason = is_identifier(series, column)
        if drop_non_numeric and not pd.api.types.is_numeric_dtype(series):
            add(Step("drop_column", column, "not numeric: dropped as asked"))
        elif reason:
            add(Step("drop_column", column, f"looks like an identifier: {reason}"))
        elif missing > max_missing:
            add(Step("drop_column", column, f"mostly empty: {missing:.0%} of values missing"))
        elif series.nunique(dropna=True) <= 1:
            add(Step("drop_column", column, "constant: a single value, nothing to learn from"))
        elif _is_text(series):
            distinct = int(series.nunique(dropna=True))
            share = distinct / max(int(series.notna().sum()), 1)
            if share > free_text_ratio and distinct > max_levels:
                add(
                    Step(
                        "drop_column",
                        column,
                        f"free text: {distinct} distinct values in {rows} rows, too many to encode",
                    )
                )
            elif distinct > max_levels:
                top = series.value_counts().index[: max_levels - 1].map(str).tolist()
                add(
                    Step(
                        "cap_levels",
                        column,
                        f"{distinct} distinct values: kept the {len(top)} most frequent, "
                        f"the other {distinct - len(top)} become 'other'",
                        {"levels": top},
                    )
                )
    for column in keep:
        missing_rows = int(work[column].isna().sum())
        if missing_rows:
            add(
                Step(
                    "drop_rows_missing_target",
                    column,
                    f"{missing_rows} rows have no value in the kept column: nothing to learn",
                    {"rows": missing_rows},
                )
            )
    for column in list(work.columns):
        if column in keep:
            continue
        series = work[column]
        gaps = int(series.isna().sum())
        if not gaps:
            continue
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            value: Any = float(series.median())
            how = "median"
        else:
            value = series.mode(dropna=True).iloc[0]
            value = value.item() if hasattr(value, "item") else value
            how = "most frequent value"
        add(
            Step(
                "impute",
                column,
                f"{gaps} missing values filled with the {how} {value!r}",
                {"value": value, "rows": gaps},
            )
        )
    for column in list(work.columns):
        if column in keep:
            continue
        series = work[column]
        if not (_is_text(series) or pd.api.types.is_bool_dtype(series)):
            continue
        levels = sorted(series.dropna().unique().tolist(), key=str)
        if len(levels) == 2:
            mapping = {str(level): code for code, level in enumerate(levels)}
            add(
                Step(
                    "encode_binary",
                    column,
                    "two values encoded as 0/1: "
                    + ", ".join(f"{k!r} → {v}" for k, v in mapping.items()),
                    {"mapping": mapping},
                )
            )
        else:
            names = [f"{column}_{level}" for level in levels]
            add(
                Step(
                    "encode_onehot",
                    column,
                    f"{len(levels)} categories become indicator columns {names}",
                    {"levels": [str(level) for level in levels]},
                )
            )
    return CleaningPlan(
        steps=steps,
        rows_before=int(frame.shape[0]),
        rows_after=int(work.shape[0]),
        columns_before=[str(c) for c in frame.columns],
        columns_after=[str(c) for c in work.columns],
    )


def replay(frame: pd.DataFrame, steps: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """``frame`` after the stored ``steps`` of one or more cleanings (``Step.as_dict()``), row
    drops included, keeping ``frame``'s index: the rows left are traceable to the raw rows."""
    out = frame
    for step in steps:
        out = apply_step(out, step)
    return out


def _run(frame: pd.DataFrame, step: Step) -> pd.DataFrame:
    # the one implementation of each step, shared with the model that replays them on raw rows
    return apply_step(frame, step.as_dict())
