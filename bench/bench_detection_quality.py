"""Detection quality of the monitor on streams with known change points.

Usage::

    .venv/bin/python bench/bench_detection_quality.py [--clean-windows 100] [--json OUT.json]

Every scenario is a stream of windows of 1,000 records scored by a real scikit-learn model:
``--before`` clean windows, then the change, then ``--after`` changed windows. Per scenario it
reports whether the monitor (``mlwarden.monitor.engine.Monitor``, every detector on) detected
the change, the delay in windows, the false-alarm windows before the change, and whether the
first finding after the change named the right kind and feature(s). A separate clean stream
measures false alarms per 100 windows. Side by side, as reference points: River's ADWIN and
DDM on the per-record error of the same stream, and Evidently's default drift preset when
Evidently is importable (it is not a dependency).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from mlwarden.datasets import load
from mlwarden.domain import FeatureSpec, FeatureType, ModelSpec, Task
from mlwarden.monitor.engine import Monitor, MonitorConfig

WINDOW = 1000
NUMERIC = ["x0", "x1", "x2", "x3", "x4"]
CORR = 0.7


# ---------------------------------------------------------------------- synthetic stream


def inputs(rng: np.random.Generator, n: int, change: str | None = None,
           size: float = 0.0) -> pd.DataFrame:
    cov = np.eye(5)
    cov[2, 3] = cov[3, 2] = CORR
    if change == "correlation":
        cov[2, 3] = cov[3, 2] = -CORR  # same marginals, opposite dependence
    x = rng.multivariate_normal(np.zeros(5), cov, n)
    if change == "mean_shift":
        x[:, 0] += size
    if change == "variance":
        x[:, 1] *= 1.5
    frame = pd.DataFrame(x, columns=NUMERIC)
    levels, p = ["a", "b", "c", "d"], [0.4, 0.3, 0.2, 0.1]
    frame["cat"] = rng.choice(levels, n, p=p)
    if change == "new_category":
        frame.loc[rng.random(n) < 0.1, "cat"] = "e"
    logit = 1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] + (frame["cat"] == "a") * 0.8 - 0.4
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    if change == "label_flip":
        region = x[:, 1] > 0.5
        frame.loc[region, "label"] = 1 - frame.loc[region, "label"]
    if change == "prior_shift":
        # Class prior 0.5 -> about 0.8 by resampling positives: P(x | y) unchanged.
        pos, neg = frame[frame.label == 1], frame[frame.label == 0]
        k = int(0.8 * n)
        frame = pd.concat([pos.sample(k, replace=True, random_state=int(rng.integers(1e9))),
                           neg.sample(n - k, replace=True, random_state=int(rng.integers(1e9)))])
        frame = frame.sample(frac=1.0, random_state=int(rng.integers(1e9))).reset_index(drop=True)
    if change == "null_burst":
        frame["x3"] = frame["x3"].where(rng.random(n) > 0.3)
    if change == "unit_change":
        frame["x4"] = frame["x4"] * 100
    return frame


class Scored:
    """A logistic regression trained once; turns inputs into prediction records."""

    def __init__(self, rng: np.random.Generator) -> None:
        train = inputs(rng, 5000)
        self.model = LogisticRegression(max_iter=500).fit(self._x(train), train["label"])
        self.rng = rng

    @staticmethod
    def _x(frame: pd.DataFrame) -> np.ndarray:
        x = frame[NUMERIC].fillna(0.0).to_numpy()
        return np.column_stack([x, (frame["cat"] == "a").to_numpy(float)])

    def records(self, frame: pd.DataFrame) -> pd.DataFrame:
        score = self.model.predict_proba(self._x(frame))[:, 1]
        out = frame.copy()
        out["score"] = score
        out["prediction"] = (score > 0.5).astype(int)
        out["latency_ms"] = self.rng.lognormal(3.0, 0.3, len(frame))
        out["error"] = ""
        return out


SPEC = ModelSpec(name="bench", task=Task.CLASSIFICATION, positive_class=1,
                 features=[FeatureSpec(name=n) for n in NUMERIC]
                 + [FeatureSpec(name="cat", type=FeatureType.CATEGORICAL)])


@dataclass
class Scenario:
    name: str
    change: str | None
    size: float
    kinds: set[str]
    features: set[str]


SCENARIOS = [
    Scenario("mean shift 0.1 std", "mean_shift", 0.1, {"data_drift"}, {"x0"}),
    Scenario("mean shift 0.25 std", "mean_shift", 0.25, {"data_drift"}, {"x0"}),
    Scenario("mean shift 0.5 std", "mean_shift", 0.5, {"data_drift"}, {"x0"}),
    Scenario("mean shift 1 std", "mean_shift", 1.0, {"data_drift"}, {"x0"}),
    Scenario("variance x1.5", "variance", 0.0, {"data_drift"}, {"x1"}),
    Scenario("correlation flip (marginals same)", "correlation", 0.0, {"data_drift"},
             {"x2", "x3"}),
    Scenario("null burst 30%", "null_burst", 0.0, {"data_quality"}, {"x3"}),
    Scenario("unit change x100", "unit_change", 0.0, {"data_quality"}, {"x4"}),
    Scenario("new category 10%", "new_category", 0.0, {"data_quality", "data_drift"}, {"cat"}),
    Scenario("label flip in a region", "label_flip", 0.0, {"concept_drift"}, set()),
    Scenario("class prior shift 0.5->0.8", "prior_shift", 0.0,
             {"prediction_drift", "data_drift"}, set()),
]


# ---------------------------------------------------------------------- evaluation


def config() -> MonitorConfig:
    return MonitorConfig(multivariate=True)


def first_right(results: list[Any], start: int, kinds: set[str], features: set[str]
                ) -> tuple[int | None, bool, bool]:
    """Delay to the first window with a finding of a right kind; did it name the features?"""
    for r in results[start:]:
        right = [f for f in r.findings if f.kind.value in kinds]
        if right:
            named = not features or any(features & set(f.features) for f in right)
            return r.index - start, True, named
    return None, False, False


def river_reference(errors_per_window: list[np.ndarray], change: int) -> dict[str, Any]:
    """River's ADWIN and DDM on the per-record error: first alarm window, alarms before."""
    from river import drift

    out: dict[str, Any] = {}
    for name, det in (("adwin", drift.ADWIN()), ("ddm", drift.binary.DDM())):
        alarms: list[int] = []
        for w, errors in enumerate(errors_per_window):
            fired = False
            for e in errors:
                det.update(bool(e) if name == "ddm" else float(e))
                fired = fired or det.drift_detected
            if fired:
                alarms.append(w)
        after = [w for w in alarms if w >= change]
        out[name] = {"delay": (after[0] - change) if after else None,
                     "false_alarms_before": sum(w < change for w in alarms)}
    return out


def evidently_reference(reference: pd.DataFrame, windows: list[pd.DataFrame], change: int,
                        features: list[str]) -> dict[str, Any] | str:
    try:
        from evidently import Report  # type: ignore[import-not-found]
        from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]
    except ImportError:
        return "not installed"
    flagged = []
    for w, frame in enumerate(windows):
        snapshot = Report([DataDriftPreset()]).run(frame[features], reference[features])
        result = snapshot.dict()
        drifted = any(m.get("value", {}).get("count", 0) > 0 for m in result.get("metrics", [])
                      if "DriftedColumnsCount" in str(m.get("metric_id", "")))
        if drifted:
            flagged.append(w)
    after = [w for w in flagged if w >= change]
    return {"delay": (after[0] - change) if after else None,
            "false_alarms_before": sum(w < change for w in flagged)}


def run_synthetic(before: int, after: int, clean_windows: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    scored = Scored(rng)
    reference = scored.records(inputs(rng, 5000))
    out: dict[str, Any] = {"scenarios": []}

    t0 = time.perf_counter()
    monitor = Monitor(reference, SPEC, config())
    clean = [monitor.process(scored.records(inputs(rng, WINDOW)), index=i)
             for i in range(clean_windows)]
    noisy = [r for r in clean if r.findings]
    out["clean"] = {
        "windows": clean_windows,
        "false_alarm_windows": len(noisy),
        "per_100": 100 * len(noisy) / clean_windows,
        "kinds": sorted({f.kind.value for r in noisy for f in r.findings}),
        "examples": [f.message for r in noisy[:3] for f in r.findings[:1]],
        "seconds_per_window": (time.perf_counter() - t0) / clean_windows,
    }
    for sc in SCENARIOS:
        monitor = Monitor(reference, SPEC, config())
        frames = ([scored.records(inputs(rng, WINDOW)) for _ in range(before)]
                  + [scored.records(inputs(rng, WINDOW, sc.change, sc.size))
                     for _ in range(after)])
        results = [monitor.process(f, index=i) for i, f in enumerate(frames)]
        delay, kind_ok, named = first_right(results, before, sc.kinds, sc.features)
        any_after = next((r for r in results[before:] if r.findings), None)
        errors = [(f["prediction"] != f["label"]).to_numpy() for f in frames]
        out["scenarios"].append({
            "scenario": sc.name,
            "detected": any_after is not None,
            "delay": delay,
            "right_kind": kind_ok,
            "right_features": named,
            "false_alarms_before": sum(bool(r.findings) for r in results[:before]),
            "false_alarm_examples": [f.message for r in results[:before] for f in r.findings][:3],
            "first_kinds": sorted({f.kind.value for f in any_after.findings}) if any_after
            else [],
            "river": river_reference(errors, before),
            "evidently": evidently_reference(reference, frames, before, [*NUMERIC, "cat"]),
        })
        print(json.dumps(out["scenarios"][-1]), flush=True)
    return out


# ---------------------------------------------------------------------- real data


def run_electricity() -> dict[str, Any]:
    """Elec2: a model trained on the first 3,000 half-hours; vicprice, vicdemand and transfer
    start varying only after row 17,424; the price relation drifts over the years."""
    data = load("electricity")
    features = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
    model = LogisticRegression(max_iter=1000).fit(data[features].iloc[:3000],
                                                  data["target"].iloc[:3000])

    def records(rows: pd.DataFrame) -> pd.DataFrame:
        out = rows[features].copy()
        score = model.predict_proba(out)[:, 1]
        out["score"], out["prediction"] = score, (score > 0.5).astype(int)
        out["label"] = rows["target"].to_numpy()
        return out

    spec = ModelSpec(name="elec", task=Task.CLASSIFICATION, positive_class=1,
                     features=[FeatureSpec(name=f) for f in features])
    monitor = Monitor(records(data.iloc[3000:6000]), spec, config())
    starts = list(range(6000, len(data) - WINDOW + 1, WINDOW))
    results = [monitor.process(records(data.iloc[s:s + WINDOW]), index=i)
               for i, s in enumerate(starts)]
    change = next(i for i, s in enumerate(starts) if s + WINDOW > 17_424)
    moved = {"vicprice", "vicdemand", "transfer"}
    delay, _, named = first_right(results, change, {"data_drift", "data_quality"}, moved)
    perf = [r.index for r in results for f in r.findings
            if f.kind.value == "concept_drift" or "impact" in f.evidence]
    return {
        "windows": len(results),
        "change_window": change,
        # Per-feature findings only: the domain classifier names every feature it was given.
        "false_alarm_windows_before_change_on_moved_features": sum(
            any(moved & set(f.features) for f in r.findings if f.detector != "domain_classifier")
            for r in results[:change]),
        "kinds_before_change": sorted({f.kind.value for r in results[:change]
                                       for f in r.findings}),
        "delay_moved_features": delay,
        "right_features": named,
        "windows_with_performance_findings": len(set(perf)),
        "first_performance_window": min(perf) if perf else None,
        "accuracy_first_last": [results[0].signals.get("accuracy"),
                                results[-1].signals.get("accuracy")],
    }


def run_bike() -> dict[str, Any]:
    """Bike rentals by date: a regressor trained on the first two months; seasons change."""
    data = load("bike_sharing")
    numeric = ["temp", "atemp", "hum", "windspeed"]
    data = data.assign(**{c: pd.to_numeric(data[c], errors="coerce") for c in numeric})
    data = data.dropna(subset=[*numeric, "cnt"]).reset_index(drop=True)
    hour = data["hr"].str.extract(r"(\d+)(am|pm)")
    data["hour"] = hour[0].astype(float) % 12 + (hour[1] == "pm") * 12
    features = [*numeric, "hour"]
    train, ref_rows = data.iloc[:1400], data.iloc[1400:2800]
    model = HistGradientBoostingRegressor(random_state=0).fit(train[features], train["cnt"])

    def records(rows: pd.DataFrame) -> pd.DataFrame:
        out = rows[features].copy()
        out["prediction"] = model.predict(out)
        out["label"] = rows["cnt"].to_numpy()
        out["timestamp"] = pd.to_datetime(rows["dteday"], errors="coerce")
        return out

    spec = ModelSpec(name="bike", task=Task.REGRESSION,
                     features=[FeatureSpec(name=f) for f in features])
    monitor = Monitor(records(ref_rows), spec, config())
    starts = list(range(2800, len(data) - WINDOW + 1, WINDOW))
    results = [monitor.process(records(data.iloc[s:s + WINDOW]), index=i)
               for i, s in enumerate(starts)]
    drift_windows = [r.index for r in results if any(f.kind.value == "data_drift"
                                                     for f in r.findings)]
    return {
        "windows": len(results),
        "windows_with_data_drift": len(drift_windows),
        "first_data_drift_window": drift_windows[0] if drift_windows else None,
        "features_first": sorted({ft for r in results[:1] for f in r.findings
                                  for ft in f.features if f.kind.value == "data_drift"}),
        "windows_with_performance_findings": sum(
            any(f.kind.value == "concept_drift" or "impact" in f.evidence for f in r.findings)
            for r in results),
        "rmse_first_last": [results[0].signals.get("rmse"), results[-1].signals.get("rmse")],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clean-windows", type=int, default=100)
    parser.add_argument("--before", type=int, default=5)
    parser.add_argument("--after", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    runs: dict[str, Callable[[], Any]] = {
        "synthetic": lambda: run_synthetic(args.before, args.after, args.clean_windows,
                                           args.seed),
        "electricity": run_electricity,
        "bike_sharing": run_bike,
    }
    report: dict[str, Any] = {}
    for name, run in runs.items():
        report[name] = run()
        if name != "synthetic":
            print(name, json.dumps(report[name]), flush=True)
    report["seconds"] = time.perf_counter() - started
    print(json.dumps({"clean": report["synthetic"]["clean"], "seconds": report["seconds"]}))
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(report, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
