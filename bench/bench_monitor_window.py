"""Per-window cost of the monitor: one closed window of 1,000 records, 10 features, every detector.

The records come from the bundled electricity data (Elec2): its six columns plus four derived
from them (the half-hour of the day as an integer, the weekday as a category, the change of the
NSW price since the half-hour before, the NSW-Victoria demand gap), so numbers, integers and
categories all pass through the detectors. A logistic regression trained on the first 3,000
rows answers every record (prediction, score); every record is labelled, has a latency, an
error field (one in 200 failed), a timestamp and an id. The reference is the next ``--reference``
rows (10,000 by default), the windows the rows after it, 1,000 each, in time order: Elec2
drifts, so this is the monitor on a real, moving stream, not on a clean one.

The monitor is ``mlwarden.monitor.engine.Monitor`` with every detector on (the domain classifier
included, ``multivariate=True``, which is off by default). A throw-away monitor first processes
one window so import and first-call costs are not counted; then a fresh monitor processes every
window in order and each ``process`` call is timed: wall clock (``time.perf_counter``) and CPU
time of the process (``time.process_time``, all threads; steadier than the wall clock when other
processes share the cores). ``domain_classifier_runs`` counts the windows where the domain
classifier was fitted (the monitor runs it only where it can add a joint change).

    .venv/bin/python bench/bench_monitor_window.py                 # median / p90 ms per window
    .venv/bin/python bench/bench_monitor_window.py --profile       # + cProfile top 20
    .venv/bin/python bench/bench_monitor_window.py --json out.json
    .venv/bin/python bench/bench_monitor_window.py --no-screen     # the classifier on every window
    .venv/bin/python bench/bench_monitor_window.py --text          # + a text feature: both runs

``--text`` adds an eleventh feature, declared ``text``: a passenger's name from the bundled
Titanic data drawn at random for each record (seeded), and runs the monitor without it and with
it, one after the other in the same process, printing both and the cost of the text column
(the difference of the medians, and their ratio).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import time
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from mlwarden.datasets import load
from mlwarden.domain import FeatureSpec, FeatureType, ModelSpec, Task
from mlwarden.monitor.engine import Monitor, MonitorConfig

WINDOW = 1_000
TRAIN = 3_000
NUMERIC = [
    "period",
    "nswprice",
    "nswdemand",
    "vicprice",
    "vicdemand",
    "transfer",
    "price_change",
    "demand_gap",
]
FEATURES = [*NUMERIC, "half_hour", "weekday"]
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def electricity_records() -> pd.DataFrame:
    """Every Elec2 row as a scored, labelled prediction record with 10 features."""
    data = load("electricity").reset_index(drop=True)
    frame = data[["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]].copy()
    frame["price_change"] = data["nswprice"].diff().fillna(0.0)
    frame["demand_gap"] = data["nswdemand"] - data["vicdemand"]
    frame["half_hour"] = np.arange(len(data)) % 48
    frame["weekday"] = [WEEKDAYS[d] for d in (np.arange(len(data)) // 48) % 7]
    model = LogisticRegression(max_iter=1000).fit(
        frame[NUMERIC].iloc[:TRAIN], data["target"].iloc[:TRAIN]
    )
    score = model.predict_proba(frame[NUMERIC])[:, 1]
    rng = np.random.default_rng(0)
    frame["score"] = score
    frame["prediction"] = (score > 0.5).astype(int)
    frame["label"] = data["target"].to_numpy()
    frame["latency_ms"] = rng.lognormal(3.0, 0.3, len(frame))
    frame["error"] = np.where(rng.random(len(frame)) < 0.005, "timeout", "")
    frame["timestamp"] = pd.Timestamp("1996-05-07") + pd.to_timedelta(
        np.arange(len(frame)) * 30, unit="min"
    )
    frame["id"] = [f"r{i}" for i in range(len(frame))]
    return frame


def spec(text: bool = False) -> ModelSpec:
    extra = [FeatureSpec(name="passenger", type=FeatureType.TEXT)] if text else []
    return ModelSpec(
        name="elec10",
        task=Task.CLASSIFICATION,
        positive_class=1,
        features=[FeatureSpec(name=f) for f in NUMERIC]
        + [
            FeatureSpec(name="half_hour", type=FeatureType.INTEGER),
            FeatureSpec(name="weekday", type=FeatureType.CATEGORICAL),
            *extra,
        ],
    )


def run(
    reference_rows: int,
    max_windows: int | None,
    profile: bool,
    screen: bool = True,
    text: bool = False,
) -> dict[str, Any]:
    records = electricity_records()
    if text:
        names = load("titanic")["Name"].to_numpy()
        records["passenger"] = np.random.default_rng(1).choice(names, size=len(records))
    reference = records.iloc[TRAIN : TRAIN + reference_rows].reset_index(drop=True)
    starts = list(range(TRAIN + reference_rows, len(records) - WINDOW + 1, WINDOW))
    if max_windows is not None:
        starts = starts[:max_windows]
    windows = [records.iloc[s : s + WINDOW].reset_index(drop=True) for s in starts]
    config = MonitorConfig(multivariate=True, **({} if screen else {"multivariate_screen": None}))

    Monitor(reference, spec(text), config).process(windows[0], index=0)  # warm-up, not counted
    t0 = time.perf_counter()
    monitor = Monitor(reference, spec(text), config)
    setup_ms = 1000 * (time.perf_counter() - t0)
    classifier_runs = _count_calls(monitor._multivariate, "detect_samples")
    profiler = cProfile.Profile() if profile else None
    times: list[float] = []
    cpu: list[float] = []
    detectors: Counter[str] = Counter()
    for i, window in enumerate(windows):
        if profiler is not None:
            profiler.enable()
        t0, c0 = time.perf_counter(), time.process_time()
        result = monitor.process(window, index=i)
        times.append(1000 * (time.perf_counter() - t0))
        cpu.append(1000 * (time.process_time() - c0))
        if profiler is not None:
            profiler.disable()
        detectors.update({f.detector for f in result.findings})
    ordered = sorted(times)
    out: dict[str, Any] = {
        "windows": len(windows),
        "window_records": WINDOW,
        "features": len(FEATURES) + text,
        "reference_records": len(reference),
        "monitor_setup_ms": round(setup_ms, 1),
        "median_ms": round(statistics.median(times), 2),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "max_ms": round(max(times), 2),
        "cpu_median_ms": round(statistics.median(cpu), 2),
        "cpu_p90_ms": round(sorted(cpu)[min(len(cpu) - 1, int(0.9 * len(cpu)))], 2),
        "domain_classifier_runs": classifier_runs[0],
        "per_window_ms": [round(t, 2) for t in times],
        "windows_with_finding_by_detector": dict(sorted(detectors.items())),
    }
    if profiler is not None:
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(20)
        out["profile_cumulative_top20"] = buffer.getvalue()
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(20)
        out["profile_tottime_top20"] = buffer.getvalue()
    return out


def _count_calls(target: Any, method: str) -> list[int]:
    """Counts calls of ``target.method`` from now on (a one-item list, updated in place)."""
    count = [0]
    original = getattr(target, method)

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original(*args, **kwargs)

    setattr(target, method, counted)
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=int, default=10_000, help="reference rows")
    parser.add_argument("--windows", type=int, default=None, help="at most this many windows")
    parser.add_argument("--profile", action="store_true", help="print a cProfile top 20")
    parser.add_argument(
        "--no-screen",
        action="store_true",
        help="run the domain classifier on every window (multivariate_screen=None)",
    )
    parser.add_argument(
        "--text", action="store_true", help="run without and with a text feature, and compare"
    )
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)
    if args.text:
        _compare_text(args.reference, args.windows, screen=not args.no_screen)
        return
    out = run(args.reference, args.windows, args.profile, screen=not args.no_screen)
    for key in ("profile_cumulative_top20", "profile_tottime_top20"):
        if key in out:
            print(out[key])
    summary = {
        k: v for k, v in out.items() if not k.startswith("profile_") and k != "per_window_ms"
    }
    print(json.dumps(summary, indent=1))
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(out, fh, indent=1)


def _compare_text(reference_rows: int, max_windows: int | None, screen: bool) -> None:
    """The monitor without and with the text feature, and what the text column costs."""
    runs = {
        name: run(reference_rows, max_windows, False, screen=screen, text=text)
        for name, text in (("without_text", False), ("with_text", True))
    }
    keys = ("windows", "features", "monitor_setup_ms", "median_ms", "p90_ms", "cpu_median_ms")
    out: dict[str, Any] = {name: {k: r[k] for k in keys} for name, r in runs.items()}
    for stat in ("median_ms", "cpu_median_ms", "monitor_setup_ms"):
        before, after = runs["without_text"][stat], runs["with_text"][stat]
        out[f"text_column_{stat}"] = round(after - before, 2)
        out[f"ratio_{stat}"] = round(after / before, 3) if before else None
    found = runs["with_text"]["windows_with_finding_by_detector"]
    out["text_drift_findings"] = found.get("text_drift", 0)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
