"""``plan_repair``: from a quality incident's findings to the input repair that would mend them.

The repair remedy keeps the champion and mends what the upstream pipeline broke (see
``serving.repair``). Which rule fits comes from the data-quality finding's own check; the values
come from the live version's training sample, the data the model learned from:

* ``null_burst`` and ``missing_feature``: nulls (or the dropped column) take the value a
  least-squares line through the request's other numeric features predicts, when that line
  explains at least ``MIN_R2`` of the feature's variance in the sample (regression imputation,
  Little & Rubin 2002, section 4.2), else the sample's median; a category takes the most
  frequent value;
* ``unit_change`` with its detected power-of-ten ``factor``: a value outside the sample's range
  (widened by a tenth of the range on each side, so values just past it are left alone) whose
  division by the factor lands inside is divided; with a known unit factor that is no power of
  ten (miles to kilometres), every value is divided (``divide_all``): most converted values
  still lie inside the range, so a value on its own cannot tell;
* ``unseen_category``: a category the sample never held becomes its most frequent one;
* a ``missing_feature`` or ``null_burst`` beside exactly one ``unknown_column`` is taken as
  renamed: the request's
  new key is renamed back (the fill still covers requests that lack both).

Whether the repair serves better than doing nothing (or than a fallback model) is not decided
here: the evidence scores it on the incident's labelled records first (``agent.evidence``).

>>> from mlwarden.domain import Finding, FindingKind
>>> sample = [{"demand": 0.2 + i / 100, "weather": "clear" if i % 3 else "rain"} for i in range(60)]
>>> scaled = Finding(kind=FindingKind.DATA_QUALITY, detector="quality", features=["demand"],
...                  statistic="s", score=2.0, threshold=0.5, message="demand x100",
...                  evidence={"check": "unit_change", "factor": 100.0})
>>> rule = plan_repair([scaled], sample)["demand"]
>>> rule.divide_by, round(rule.low, 3), round(rule.high, 3)
(100.0, 0.141, 0.849)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlwarden.domain import FeatureRepair, Finding, FindingKind

__all__ = ["REPAIRABLE_CHECKS", "plan_repair"]

REPAIRABLE_CHECKS = frozenset({"null_burst", "missing_feature", "unit_change", "unseen_category"})
# how far past the sample's range a value may lie before a unit factor is suspected, as a
# share of the range: real data reaches a little beyond what the model was trained on
RANGE_SLACK = 0.1
# a null is filled from the request's other features when a straight line through them explains
# at least this share of the feature's variance in the training sample; else with the median
MIN_R2 = 0.3


def _features_of(row: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = row.get("features")
    return inner if isinstance(inner, Mapping) else row


def _python(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _central(column: pd.Series, categorical: bool) -> tuple[Any, bool]:
    """(median, or most frequent value for a category; whether it is a number); None when the
    column holds no value."""
    values = column.dropna()
    if values.empty:
        return None, False
    numeric = pd.to_numeric(values, errors="coerce")
    if not categorical and numeric.notna().all() and not pd.api.types.is_bool_dtype(values):
        return float(numeric.median()), True
    return _python(values.mode().iloc[0]), False


def _regression_fill(frame: pd.DataFrame, target: str, broken: set[str]) -> dict[str, Any]:
    """The least-squares line that predicts ``target`` from the sample's other numeric
    features (none named by a finding: they may be broken too), as ``FeatureRepair`` fields;
    empty when it explains less than ``MIN_R2`` of the variance (the median does as well)."""
    numbers = frame.apply(pd.to_numeric, errors="coerce")
    predictors = [
        c
        for c in numbers.columns
        if c != target and c not in broken and numbers[c].notna().all() and numbers[c].std() > 0
    ]
    rows = numbers[[target, *predictors]].dropna()
    if not predictors or len(rows) < max(30, 3 * len(predictors)):
        return {}
    x = np.column_stack([np.ones(len(rows)), rows[predictors].to_numpy(dtype=float)])
    y = rows[target].to_numpy(dtype=float)
    solution, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ solution
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total if total > 0 else 0.0
    if r2 < MIN_R2 or not np.isfinite(solution).all():
        return {}
    return {
        "fill_intercept": float(solution[0]),
        "fill_coefficients": {
            name: float(c) for name, c in zip(predictors, solution[1:], strict=True)
        },
        "low": float(y.min()),
        "high": float(y.max()),
    }


def _renamed(findings: Sequence[Finding]) -> dict[str, str]:
    """Broken feature -> the unknown column that replaced it, when exactly one feature went
    missing (wholly, or in part of the window: a null burst) and exactly one unknown column
    appeared: the detector's "renamed?" hint."""
    gone = {"missing_feature", "null_burst"}
    missing = {n for f in findings if f.evidence.get("check") in gone for n in f.features}
    unknown = {
        n for f in findings if f.evidence.get("check") == "unknown_column" for n in f.features
    }
    if len(missing) == 1 and len(unknown) == 1:
        return {missing.pop(): unknown.pop()}
    return {}


def plan_repair(
    findings: Sequence[Finding],
    sample: Sequence[Mapping[str, Any]] | None,
    categorical: frozenset[str] = frozenset(),
) -> dict[str, FeatureRepair]:
    """The repair of each feature that a repairable data-quality finding names (empty when no
    finding is repairable or the version has no training sample to take values from).
    ``categorical`` names the features the schema declares categorical (their codes may look
    like numbers: a null takes the most frequent code, not a median)."""
    if not sample:
        return {}
    frame = pd.DataFrame([_features_of(row) for row in sample])
    renamed = _renamed(findings)
    # features a finding names may be broken too: no regression fill leans on them
    broken = {name for f in findings for name in f.features}
    rules: dict[str, dict[str, Any]] = {}
    for finding in findings:
        check = finding.evidence.get("check")
        if finding.kind is not FindingKind.DATA_QUALITY or check not in REPAIRABLE_CHECKS:
            continue
        for name in finding.features:
            if name not in frame.columns:
                continue
            central, numeric = _central(frame[name], name in categorical)
            if central is None:
                continue
            rule = rules.setdefault(name, {})
            if check in ("null_burst", "missing_feature"):
                if name in renamed:
                    rule["renamed_from"] = renamed[name]
                rule["fill"] = central
                if numeric:
                    rule.update(_regression_fill(frame, name, broken))
            elif check == "unit_change" and numeric:
                factor = float(finding.evidence.get("factor") or 0.0)
                if factor > 0 and factor != 1.0:
                    values = pd.to_numeric(frame[name], errors="coerce").dropna()
                    low, high = float(values.min()), float(values.max())
                    slack = RANGE_SLACK * (high - low)
                    orders = math.log10(factor)
                    rule.update(
                        divide_by=factor,
                        divide_all=not math.isclose(orders, round(orders), abs_tol=1e-9),
                        low=low - slack,
                        high=high + slack,
                    )
            elif check == "unseen_category":
                values = frame[name].dropna()
                known = [_python(v) for v in values.unique()]
                rule.update(known=known, unseen_to=_python(values.mode().iloc[0]))
    return {name: FeatureRepair(**rule) for name, rule in rules.items() if rule}
