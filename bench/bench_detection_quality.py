"""Detection quality of the monitor on streams with known change points.

Usage::

    .venv/bin/python bench/bench_detection_quality.py [--clean-windows 100] [--json OUT.json]
    .venv/bin/python bench/bench_detection_quality.py --evidently-python /path/to/python

Every scenario is a stream of windows of 1,000 records scored by a real scikit-learn model:
``--before`` clean windows, then the change, then ``--after`` changed windows. Per scenario it
reports whether the monitor (``mlwarden.monitor.engine.Monitor``, every detector on) detected
the change, the delay in windows, the false-alarm windows before the change, and whether the
first finding after the change named the right kind and feature(s). A separate clean stream
measures false alarms per 100 windows. Side by side, as reference points: River's ADWIN and
DDM on the per-record error of the same stream, and Evidently's default drift preset
(``DataDriftPreset()``) on the features of the same windows.

Evidently is not a dependency of mlwarden (and does not install next to pandas 3), so it runs in
the interpreter given by ``--evidently-python``, the way ``bench_drift_speed.py`` does it: every
reference and window is written to Parquet in a temporary folder, and a worker entry point of
this script (``--worker evidently --data DIR``, which imports only pandas and Evidently) runs the
preset on each window and prints the drifted columns. Without the option, or when that
interpreter cannot import Evidently, its column says "not run".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mlwarden.domain import ModelSpec
    from mlwarden.monitor.engine import MonitorConfig

# mlwarden and scikit-learn are imported inside the functions that use them: the Evidently
# worker runs this file in another interpreter that has neither.

WINDOW = 1000
NUMERIC = ["x0", "x1", "x2", "x3", "x4"]
CORR = 0.7


# ---------------------------------------------------------------------- synthetic stream


def inputs(
    rng: np.random.Generator, n: int, change: str | None = None, size: float = 0.0
) -> pd.DataFrame:
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
        frame = pd.concat(
            [
                pos.sample(k, replace=True, random_state=int(rng.integers(1e9))),
                neg.sample(n - k, replace=True, random_state=int(rng.integers(1e9))),
            ]
        )
        frame = frame.sample(frac=1.0, random_state=int(rng.integers(1e9))).reset_index(drop=True)
    if change == "null_burst":
        frame["x3"] = frame["x3"].where(rng.random(n) > 0.3)
    if change == "unit_change":
        frame["x4"] = frame["x4"] * 100
    return frame


class Scored:
    """A logistic regression trained once; turns inputs into prediction records."""

    def __init__(self, rng: np.random.Generator) -> None:
        from sklearn.linear_model import LogisticRegression

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


def synthetic_spec() -> ModelSpec:
    from mlwarden.domain import FeatureSpec, FeatureType, ModelSpec, Task

    return ModelSpec(
        name="bench",
        task=Task.CLASSIFICATION,
        positive_class=1,
        features=[FeatureSpec(name=n) for n in NUMERIC]
        + [FeatureSpec(name="cat", type=FeatureType.CATEGORICAL)],
    )


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
    Scenario("correlation flip (marginals same)", "correlation", 0.0, {"data_drift"}, {"x2", "x3"}),
    Scenario("null burst 30%", "null_burst", 0.0, {"data_quality"}, {"x3"}),
    Scenario("unit change x100", "unit_change", 0.0, {"data_quality"}, {"x4"}),
    Scenario("new category 10%", "new_category", 0.0, {"data_quality", "data_drift"}, {"cat"}),
    Scenario("label flip in a region", "label_flip", 0.0, {"concept_drift"}, set()),
    Scenario(
        "class prior shift 0.5->0.8", "prior_shift", 0.0, {"prediction_drift", "data_drift"}, set()
    ),
]


# ---------------------------------------------------------------------- evaluation


def config() -> MonitorConfig:
    from mlwarden.monitor.engine import MonitorConfig

    return MonitorConfig(multivariate=True)


def first_right(
    results: list[Any], start: int, kinds: set[str], features: set[str]
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
        out[name] = {
            "delay": (after[0] - change) if after else None,
            "false_alarms_before": sum(w < change for w in alarms),
        }
    return out


# ---------------------------------------------------------------------- Evidently


@dataclass
class Stream:
    """One stream handed to Evidently: a reference, its windows and the feature columns."""

    reference: pd.DataFrame
    windows: list[pd.DataFrame]
    columns: list[str]


@dataclass
class EvidentlyStreams:
    """Streams collected during the run, scored by Evidently afterwards in its own interpreter."""

    streams: dict[str, Stream] = field(default_factory=dict)

    def add(
        self, name: str, reference: pd.DataFrame, windows: list[pd.DataFrame], columns: list[str]
    ) -> None:
        self.streams[name] = Stream(
            reference[columns].copy(), [w[columns].copy() for w in windows], columns
        )

    def write(self, folder: Path) -> None:
        manifest: dict[str, Any] = {}
        for k, (name, stream) in enumerate(self.streams.items()):
            ref = f"s{k:02d}_reference.parquet"
            stream.reference.to_parquet(folder / ref)
            wins = []
            for w, frame in enumerate(stream.windows):
                wins.append(f"s{k:02d}_w{w:03d}.parquet")
                frame.to_parquet(folder / wins[-1])
            manifest[name] = {"reference": ref, "windows": wins, "columns": stream.columns}
        (folder / "manifest.json").write_text(json.dumps(manifest))

    def run(self, python: str) -> dict[str, list[dict[str, Any]]] | str:
        """Per stream, per window: Evidently's drifted columns, count, share, dataset drift."""
        probe = subprocess.run(
            [python, "-c", "import evidently, pandas, pyarrow"], capture_output=True
        )
        if probe.returncode != 0:
            return "not run (evidently not importable)"
        with tempfile.TemporaryDirectory() as tmp:
            self.write(Path(tmp))
            proc = subprocess.run(
                [python, __file__, "--worker", "evidently", "--data", tmp],
                capture_output=True,
                text=True,
            )
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:]
            print(f"  (evidently worker failed: {tail})", flush=True)
            return f"not run (worker failed: {tail})"
        out: dict[str, list[dict[str, Any]]] = json.loads(proc.stdout.strip().splitlines()[-1])
        return out


def evidently_worker(folder: Path) -> None:
    """Runs ``DataDriftPreset()`` with its defaults on every window of every stream in
    ``folder/manifest.json`` and prints one JSON line. Imports only pandas and Evidently."""
    from evidently import Report  # type: ignore[import-not-found]
    from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]

    manifest = json.loads((folder / "manifest.json").read_text())
    out: dict[str, list[dict[str, Any]]] = {}
    for name, stream in manifest.items():
        reference = pd.read_parquet(folder / stream["reference"])
        out[name] = []
        for path in stream["windows"]:
            window = pd.read_parquet(folder / path)
            snapshot = Report([DataDriftPreset()]).run(window, reference)
            row: dict[str, Any] = {"drifted": []}
            for metric in snapshot.dict().get("metrics", []):
                config, value = metric.get("config", {}), metric.get("value")
                kind = str(config.get("type", ""))
                if kind.endswith("DriftedColumnsCount") and isinstance(value, dict):
                    row["count"], row["share"] = int(value["count"]), float(value["share"])
                    # The preset's dataset drift (its DatasetDriftMetric): share >= drift_share.
                    row["dataset_drift"] = row["share"] >= float(config.get("drift_share", 0.5))
                elif kind.endswith("ValueDrift") and value is not None:
                    threshold, method = config.get("threshold"), str(config.get("method", ""))
                    # Same rule as Evidently's stat tests: p-values drift below the threshold,
                    # distances (its defaults above 1,000 reference rows) at or above it.
                    p_value = "p_value" in method or "p-value" in method
                    if threshold is not None and (
                        value < threshold if p_value else value >= threshold
                    ):
                        row["drifted"].append(config.get("column"))
            # The per-column rule above must agree with the preset's own count.
            row["consistent"] = len(row["drifted"]) == row.get("count")
            out[name].append(row)
    print(json.dumps(out))


def evidently_alarms(
    windows: list[dict[str, Any]], change: int, rule: str, features: set[str] | None = None
) -> dict[str, Any]:
    """Delay and false alarms for a rule: "any" drifted column, or the preset's "dataset" drift.
    With ``features``, only windows whose drifted columns include one of them count."""

    def fired(row: dict[str, Any]) -> bool:
        if features is not None:
            return bool(features & set(row["drifted"]))
        return bool(row["count"] > 0) if rule == "any" else bool(row["dataset_drift"])

    flagged = [w for w, row in enumerate(windows) if fired(row)]
    after = [w for w in flagged if w >= change]
    return {
        "delay": (after[0] - change) if after else None,
        "false_alarms_before": sum(w < change for w in flagged),
        "first_drifted": windows[after[0]]["drifted"] if after else [],
    }


def run_synthetic(
    before: int, after: int, clean_windows: int, seed: int, evidently: EvidentlyStreams
) -> dict[str, Any]:
    from mlwarden.monitor.engine import Monitor

    rng = np.random.default_rng(seed)
    scored = Scored(rng)
    spec = synthetic_spec()
    reference = scored.records(inputs(rng, 5000))
    out: dict[str, Any] = {"scenarios": []}
    features = [*NUMERIC, "cat"]

    t0 = time.perf_counter()
    monitor = Monitor(reference, spec, config())
    clean_frames = [scored.records(inputs(rng, WINDOW)) for _ in range(clean_windows)]
    clean = [monitor.process(f, index=i) for i, f in enumerate(clean_frames)]
    seconds = time.perf_counter() - t0
    noisy = [r for r in clean if r.findings]
    # Every alarm on the clean stream is false: "change" sits past its end.
    river_clean = river_reference(
        [(f["prediction"] != f["label"]).to_numpy() for f in clean_frames], clean_windows
    )
    evidently.add("clean", reference, clean_frames, features)
    out["clean"] = {
        "windows": clean_windows,
        "false_alarm_windows": len(noisy),
        "per_100": 100 * len(noisy) / clean_windows,
        "kinds": sorted({f.kind.value for r in noisy for f in r.findings}),
        "examples": [f.message for r in noisy[:3] for f in r.findings[:1]],
        "seconds_per_window": seconds / clean_windows,
        "river_false_alarm_windows": {k: v["false_alarms_before"] for k, v in river_clean.items()},
    }
    for sc in SCENARIOS:
        monitor = Monitor(reference, spec, config())
        frames = [scored.records(inputs(rng, WINDOW)) for _ in range(before)] + [
            scored.records(inputs(rng, WINDOW, sc.change, sc.size)) for _ in range(after)
        ]
        results = [monitor.process(f, index=i) for i, f in enumerate(frames)]
        delay, kind_ok, named = first_right(results, before, sc.kinds, sc.features)
        any_after = next((r for r in results[before:] if r.findings), None)
        errors = [(f["prediction"] != f["label"]).to_numpy() for f in frames]
        out["scenarios"].append(
            {
                "scenario": sc.name,
                "detected": any_after is not None,
                "delay": delay,
                "right_kind": kind_ok,
                "right_features": named,
                "false_alarms_before": sum(bool(r.findings) for r in results[:before]),
                "false_alarm_examples": [f.message for r in results[:before] for f in r.findings][
                    :3
                ],
                "first_kinds": sorted({f.kind.value for f in any_after.findings})
                if any_after
                else [],
                "river": river_reference(errors, before),
                "evidently": "pending (scored after the run)",
            }
        )
        evidently.add(sc.name, reference, frames, features)
        print(json.dumps(out["scenarios"][-1]), flush=True)
    return out


# ---------------------------------------------------------------------- real data


def run_electricity(evidently: EvidentlyStreams) -> dict[str, Any]:
    """Elec2: a model trained on the first 3,000 half-hours; vicprice, vicdemand and transfer
    start varying only after row 17,424; the price relation drifts over the years."""
    from sklearn.linear_model import LogisticRegression

    from mlwarden.datasets import load
    from mlwarden.domain import FeatureSpec, ModelSpec, Task
    from mlwarden.monitor.engine import Monitor

    data = load("electricity")
    features = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
    model = LogisticRegression(max_iter=1000).fit(
        data[features].iloc[:3000], data["target"].iloc[:3000]
    )

    def records(rows: pd.DataFrame) -> pd.DataFrame:
        out = rows[features].copy()
        score = model.predict_proba(out)[:, 1]
        out["score"], out["prediction"] = score, (score > 0.5).astype(int)
        out["label"] = rows["target"].to_numpy()
        return out

    spec = ModelSpec(
        name="elec",
        task=Task.CLASSIFICATION,
        positive_class=1,
        features=[FeatureSpec(name=f) for f in features],
    )
    reference = records(data.iloc[3000:6000])
    monitor = Monitor(reference, spec, config())
    starts = list(range(6000, len(data) - WINDOW + 1, WINDOW))
    frames = [records(data.iloc[s : s + WINDOW]) for s in starts]
    results = [monitor.process(f, index=i) for i, f in enumerate(frames)]
    evidently.add("electricity", reference, frames, features)
    change = next(i for i, s in enumerate(starts) if s + WINDOW > 17_424)
    moved = {"vicprice", "vicdemand", "transfer"}
    delay, _, named = first_right(results, change, {"data_drift", "data_quality"}, moved)
    perf = [
        r.index
        for r in results
        for f in r.findings
        if f.kind.value == "concept_drift" or "impact" in f.evidence
    ]
    return {
        "windows": len(results),
        "change_window": change,
        # Per-feature findings only: the domain classifier names every feature it was given.
        "false_alarm_windows_before_change_on_moved_features": sum(
            any(moved & set(f.features) for f in r.findings if f.detector != "domain_classifier")
            for r in results[:change]
        ),
        "kinds_before_change": sorted({f.kind.value for r in results[:change] for f in r.findings}),
        "delay_moved_features": delay,
        "right_features": named,
        "windows_with_performance_findings": len(set(perf)),
        "first_performance_window": min(perf) if perf else None,
        "accuracy_first_last": [
            results[0].signals.get("accuracy"),
            results[-1].signals.get("accuracy"),
        ],
    }


def run_bike(evidently: EvidentlyStreams) -> dict[str, Any]:
    """Bike rentals by date: a regressor trained on the first two months; seasons change."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from mlwarden.datasets import load
    from mlwarden.domain import FeatureSpec, ModelSpec, Task
    from mlwarden.monitor.engine import Monitor

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

    spec = ModelSpec(
        name="bike", task=Task.REGRESSION, features=[FeatureSpec(name=f) for f in features]
    )
    reference = records(ref_rows)
    monitor = Monitor(reference, spec, config())
    starts = list(range(2800, len(data) - WINDOW + 1, WINDOW))
    frames = [records(data.iloc[s : s + WINDOW]) for s in starts]
    results = [monitor.process(f, index=i) for i, f in enumerate(frames)]
    evidently.add("bike_sharing", reference, frames, features)
    drift_windows = [
        r.index for r in results if any(f.kind.value == "data_drift" for f in r.findings)
    ]
    return {
        "windows": len(results),
        "windows_with_data_drift": len(drift_windows),
        "first_data_drift_window": drift_windows[0] if drift_windows else None,
        "features_first": sorted(
            {
                ft
                for r in results[:1]
                for f in r.findings
                for ft in f.features
                if f.kind.value == "data_drift"
            }
        ),
        "windows_with_performance_findings": sum(
            any(f.kind.value == "concept_drift" or "impact" in f.evidence for f in r.findings)
            for r in results
        ),
        "rmse_first_last": [results[0].signals.get("rmse"), results[-1].signals.get("rmse")],
    }


def attach_evidently(
    report: dict[str, Any], scored: dict[str, list[dict[str, Any]]] | str, before: int
) -> None:
    """Puts Evidently's figures next to mlwarden's and River's in ``report``."""
    if isinstance(scored, str):
        report["synthetic"]["clean"]["evidently"] = scored
        for name in ("electricity", "bike_sharing"):
            report[name]["evidently"] = scored
        for row in report["synthetic"]["scenarios"]:
            row["evidently"] = scored
        return
    clean = scored["clean"]
    report["synthetic"]["clean"]["evidently"] = {
        "false_alarm_windows_any_column": sum(r["count"] > 0 for r in clean),
        "false_alarm_windows_dataset_drift": sum(r["dataset_drift"] for r in clean),
        "columns": sorted({c for r in clean for c in r["drifted"]}),
    }
    by_name = {sc.name: sc for sc in SCENARIOS}
    for row in report["synthetic"]["scenarios"]:
        windows, sc = scored[row["scenario"]], by_name[row["scenario"]]
        anyc = evidently_alarms(windows, before, "any")
        row["evidently"] = {
            "any_column": anyc,
            "dataset_drift": evidently_alarms(windows, before, "dataset"),
            "right_features": bool(sc.features & set(anyc["first_drifted"]))
            if sc.features
            else None,
        }
    elec, change = scored["electricity"], report["electricity"]["change_window"]
    moved = evidently_alarms(elec, change, "any", {"vicprice", "vicdemand", "transfer"})
    report["electricity"]["evidently"] = {
        "false_alarm_windows_before_change_on_moved_features": moved["false_alarms_before"],
        "delay_moved_features": moved["delay"],
        "windows_any_column": sum(r["count"] > 0 for r in elec),
        "windows_dataset_drift": sum(r["dataset_drift"] for r in elec),
        "windows_any_column_before_change": sum(r["count"] > 0 for r in elec[:change]),
    }
    bike = scored["bike_sharing"]
    report["bike_sharing"]["evidently"] = {
        "windows_any_column": sum(r["count"] > 0 for r in bike),
        "windows_dataset_drift": sum(r["dataset_drift"] for r in bike),
        "first_window_drifted": bike[0]["drifted"] if bike else [],
    }
    if not all(r["consistent"] for rows in scored.values() for r in rows):
        print("  warning: Evidently's per-column verdicts disagree with its count", flush=True)


def _pair(delay: int | None, false_alarms: int) -> str:
    return f"{'-' if delay is None else delay} / {false_alarms}"


def print_table(report: dict[str, Any]) -> None:
    print(
        "\n| scenario | mlwarden delay / FA | River ADWIN | River DDM "
        "| Evidently any column | Evidently dataset drift | Evidently first drifted |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in report["synthetic"]["scenarios"]:
        ev = row["evidently"]
        cells = (
            [
                _pair(ev["any_column"]["delay"], ev["any_column"]["false_alarms_before"]),
                _pair(ev["dataset_drift"]["delay"], ev["dataset_drift"]["false_alarms_before"]),
                ", ".join(ev["any_column"]["first_drifted"]) or "-",
            ]
            if isinstance(ev, dict)
            else [ev, ev, ev]
        )
        river = [
            _pair(row["river"][k]["delay"], row["river"][k]["false_alarms_before"])
            for k in ("adwin", "ddm")
        ]
        print(
            f"| {row['scenario']} | {_pair(row['delay'], row['false_alarms_before'])} | "
            + " | ".join(river + cells)
            + " |"
        )
    clean = report["synthetic"]["clean"]
    print(
        f"\nclean stream of {clean['windows']} windows, windows with an alarm: mlwarden "
        f"{clean['false_alarm_windows']}, River {clean['river_false_alarm_windows']}, "
        f"Evidently {json.dumps(clean['evidently'])}"
    )
    for name in ("electricity", "bike_sharing"):
        print(f"{name} Evidently: {json.dumps(report[name]['evidently'])}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clean-windows", type=int, default=100)
    parser.add_argument("--before", type=int, default=5)
    parser.add_argument("--after", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_out", default=None)
    parser.add_argument(
        "--evidently-python",
        default=None,
        help="an interpreter where `import evidently` works; without it the "
        "Evidently column says 'not run'",
    )
    parser.add_argument("--worker", choices=["evidently"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        evidently_worker(Path(args.data))
        return
    started = time.perf_counter()
    evidently = EvidentlyStreams()
    runs: dict[str, Callable[[], Any]] = {
        "synthetic": lambda: run_synthetic(
            args.before, args.after, args.clean_windows, args.seed, evidently
        ),
        "electricity": lambda: run_electricity(evidently),
        "bike_sharing": lambda: run_bike(evidently),
    }
    report: dict[str, Any] = {}
    for name, run in runs.items():
        report[name] = run()
        if name != "synthetic":
            print(name, json.dumps(report[name]), flush=True)
    monitor_seconds = time.perf_counter() - started
    if args.evidently_python:
        print(
            f"Evidently DataDriftPreset() in {args.evidently_python} on "
            f"{sum(len(s.windows) for s in evidently.streams.values())} windows...",
            flush=True,
        )
        t0 = time.perf_counter()
        scored = evidently.run(args.evidently_python)
        report["evidently_seconds"] = time.perf_counter() - t0
    else:
        scored = "not run"
    attach_evidently(report, scored, args.before)
    report["seconds"] = monitor_seconds
    print_table(report)
    print(
        json.dumps(
            {
                "clean": report["synthetic"]["clean"],
                "seconds": report["seconds"],
                "evidently_seconds": report.get("evidently_seconds"),
            }
        )
    )
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(report, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
