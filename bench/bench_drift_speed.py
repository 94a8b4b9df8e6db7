"""Drift check speed: mlwarden's full per-feature drift + data-quality check against a single
pass over the data, plain SciPy, and (when installed) Evidently's DataDriftPreset.

The issue's Speed section, exactly: 25 features (20 numeric of mixed families, 5 categorical
strings with 10-50 levels), reference 1,000,000 rows vs window 200,000 rows; the reference's
profile is included in the time. A null burst is injected into one window column; the check must
catch it (data quality) and flag no unchanged column. Each method runs in its own subprocess on
the same Parquet files, so its peak memory (resident set size above the process's size after
loading the data, sampled every 2 ms) is its own.

Also measures bounded memory: profiling a stream of 10,000,000 records in chunks of 100,000
against profiling 100,000.

    .venv/bin/python bench/bench_drift_speed.py                      # everything
    .venv/bin/python bench/bench_drift_speed.py --skip-memory        # speed table only
    .venv/bin/python bench/bench_drift_speed.py --evidently-python /path/to/python
    .venv/bin/python bench/bench_drift_speed.py --skip-memory --baseline-src /tmp/main/src
    .venv/bin/python bench/bench_drift_speed.py --skip-memory --columns 400 \
        --ref-rows 100000 --win-rows 20000
    .venv/bin/python bench/bench_drift_speed.py --skip-memory --breakdown --columns 400 \
        --ref-rows 100000 --win-rows 20000 --baseline-src /tmp/main/src

``--breakdown`` also prints where mlwarden's CPU time goes, columns in series (no threads):
the reference profile, the window profile, the drift tests and the quality checks, beside
NumPy's sort of the same numeric columns alone and the single pass (best of 5 interleaved
rounds in one process).

``--baseline-src`` also runs mlwarden from another source folder (e.g. ``git archive main src``
unpacked) as ``mlwarden_baseline`` in the same interleaved rounds: a change compared side by
side with the code before it. ``--columns`` widens the frame (the extra columns numeric, of
the same ten families; 5 categorical always), ``--ref-rows`` / ``--win-rows`` size it.

Evidently is not a dependency of mlwarden: it runs when ``import evidently`` works in the
interpreter given by ``--evidently-python`` (default: this one), and is skipped otherwise.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REF_ROWS = 1_000_000
WIN_ROWS = 200_000
NULL_COLUMN = "num_07"
NULL_RATE = 0.30
CATEGORICAL_LEVELS = [10, 20, 30, 40, 50]


# ----------------------------------------------------------------------------- data


def _numeric(i: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Twenty columns of mixed families: symmetric, skewed, heavy-tailed, discrete, bounded."""
    family = i % 10
    if family == 0:
        return rng.normal(50, 10, n)
    if family == 1:
        return rng.lognormal(3, 0.7, n)
    if family == 2:
        return rng.uniform(-1, 1, n)
    if family == 3:
        return rng.exponential(2.0, n)
    if family == 4:
        return rng.gamma(2.0, 3.0, n)
    if family == 5:
        return rng.poisson(4.0, n).astype(np.int64).astype(float)
    if family == 6:
        return rng.standard_t(3, n)
    if family == 7:
        return rng.beta(2, 5, n)
    if family == 8:
        return np.where(rng.random(n) < 0.3, rng.normal(-3, 1, n), rng.normal(3, 1, n))
    return rng.integers(0, 1000, n).astype(float)


def make_frame(n: int, seed: int, columns: int = 25) -> Any:
    import polars as pl

    rng = np.random.default_rng(seed)
    numeric = columns - len(CATEGORICAL_LEVELS)
    cols: dict[str, Any] = {f"num_{i:02d}": _numeric(i, n, rng) for i in range(numeric)}
    for j, levels in enumerate(CATEGORICAL_LEVELS):
        names = np.array([f"c{j}_level_{k:02d}" for k in range(levels)])
        weights = 1.0 / np.arange(1, levels + 1)  # Zipf-like: realistic, skewed level shares
        cols[f"cat_{j}"] = names[rng.choice(levels, n, p=weights / weights.sum())]
    return pl.DataFrame(cols)


def write_data(
    folder: Path, ref_rows: int = REF_ROWS, win_rows: int = WIN_ROWS, columns: int = 25
) -> None:
    import polars as pl

    make_frame(ref_rows, 1, columns).write_parquet(folder / "reference.parquet")
    window = make_frame(win_rows, 2, columns)
    mask = np.random.default_rng(3).random(win_rows) < NULL_RATE
    window = window.with_columns(
        pl.when(pl.Series(mask)).then(None).otherwise(pl.col(NULL_COLUMN)).alias(NULL_COLUMN)
    )
    window.write_parquet(folder / "window.parquet")


# ----------------------------------------------------------------------------- methods


def run_mlwarden(ref: Any, win: Any) -> dict[str, Any]:
    from mlwarden.detect.drift import FeatureDriftDetector
    from mlwarden.detect.quality import QualityDetector
    from mlwarden.stats.profile import Profile
    from mlwarden.stats.reference import build_reference

    t0 = time.perf_counter()
    reference = build_reference(ref)
    t1 = time.perf_counter()
    window = Profile.from_data(win, reference.layout)
    drift = FeatureDriftDetector().compare(reference, window)
    quality = QualityDetector().detect(reference, window)
    t2 = time.perf_counter()
    return {
        "reference_profile_s": t1 - t0,
        "window_check_s": t2 - t1,
        "drifted": drift.drifted,
        "quality": sorted({(f.features[0], f.evidence["check"]) for f in quality}),
    }


def run_single_pass_numpy(ref: Any, win: Any) -> dict[str, Any]:
    total = 0.0
    for frame in (ref, win):
        for name in frame.columns:
            col = frame.get_column(name)
            if name.startswith("num_"):
                total += float(np.nansum(col.to_numpy()))
            else:
                col.value_counts()
    return {"checksum": total}


def run_single_pass_polars(ref: Any, win: Any) -> dict[str, Any]:
    total = 0.0
    for frame in (ref, win):
        for name in frame.columns:
            col = frame.get_column(name)
            if name.startswith("num_"):
                total += float(col.sum())
            else:
                col.value_counts()
    return {"checksum": total}


def run_scipy(ref: Any, win: Any) -> dict[str, Any]:
    from scipy import stats

    flagged = []
    columns = list(ref.columns)
    p_values = {}
    for name in columns:
        a, b = ref.get_column(name), win.get_column(name)
        if name.startswith("num_"):
            x, y = a.to_numpy(), b.drop_nulls().to_numpy()
            p_values[name] = float(stats.ks_2samp(x, y).pvalue)
        else:
            ca = dict(zip(*a.value_counts().to_dict(as_series=False).values(), strict=True))
            cb = dict(zip(*b.value_counts().to_dict(as_series=False).values(), strict=True))
            levels = sorted(set(ca) | set(cb))
            table = np.array([[ca.get(k, 0) for k in levels], [cb.get(k, 0) for k in levels]])
            p_values[name] = float(stats.chi2_contingency(table).pvalue)
    # Bonferroni at 0.05, the usual way such a script decides.
    flagged = [n for n, p in p_values.items() if p < 0.05 / len(columns)]
    return {"drifted": flagged}


def run_evidently(ref: Any, win: Any) -> dict[str, Any]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref_pd, win_pd = ref.to_pandas(), win.to_pandas()
    report = Report([DataDriftPreset()])
    snapshot = report.run(reference_data=ref_pd, current_data=win_pd)
    drifted = []
    for metric in snapshot.dict().get("metrics", []):
        value = metric.get("value")
        config = metric.get("config", {})
        if isinstance(value, dict) or "ValueDrift" not in str(config.get("type", "")):
            continue
        threshold = config.get("threshold")
        column = config.get("column")
        method = str(config.get("method", ""))
        if threshold is None or value is None:
            continue
        # p-value tests drift below the threshold, distances at or above it.
        if (value < threshold) if "p_value" in method else (value >= threshold):
            drifted.append(column)
    return {"drifted": sorted(c for c in drifted if c)}


METHODS = {
    "mlwarden": run_mlwarden,
    "mlwarden_baseline": run_mlwarden,  # the same, imported from --baseline-src
    "single_pass_numpy": run_single_pass_numpy,
    "single_pass_polars": run_single_pass_polars,
    "scipy": run_scipy,
    "evidently": run_evidently,
}


# ----------------------------------------------------------------------------- measurement


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples the resident set size in a thread; ``peak`` is the largest value seen."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def worker(method: str, folder: Path) -> None:
    """Runs one method in this (fresh) process and prints a JSON line with its figures."""
    import polars as pl

    ref = pl.read_parquet(folder / "reference.parquet")
    win = pl.read_parquet(folder / "window.parquet")
    fn = METHODS[method]
    # Warm imports outside the timing: every method gets the same chance.
    if method.startswith("mlwarden"):
        import mlwarden.detect.drift
        import mlwarden.detect.quality  # noqa: F401
    elif method == "scipy":
        import scipy.stats  # noqa: F401
    elif method == "evidently":
        import evidently  # noqa: F401
    gc.collect()
    base = _rss_bytes()
    with PeakRss() as rss:
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn(ref, win)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    result.update(
        {"method": method, "seconds": seconds, "cpu": cpu, "peak_mb": (rss.peak - base) / 2**20}
    )
    print(json.dumps(result))


def memory_worker(rows: int, chunk: int) -> None:
    """Profiles ``rows`` records generated and consumed chunk by chunk; prints peak memory."""
    from mlwarden.stats.profile import Profile, ProfileLayout

    layout = ProfileLayout.fit(make_frame(chunk, 100))
    gc.collect()
    base = _rss_bytes()
    with PeakRss(0.005) as rss:
        t0 = time.perf_counter()
        total = Profile.empty(layout)
        for i in range(rows // chunk):
            total = total.merge(Profile.from_data(make_frame(chunk, 200 + i), layout))
        seconds = time.perf_counter() - t0
    size = len(json.dumps(total.to_dict(include_layout=False)))
    print(
        json.dumps(
            {
                "rows": total.rows,
                "seconds": seconds,
                "peak_mb": (rss.peak - base) / 2**20,
                "profile_json_bytes": size,
            }
        )
    )


def _sort_each(columns: list[np.ndarray]) -> None:
    # one sorted copy at a time, as profiling keeps it: keeping them all would time the page
    # faults of hundreds of megabytes of fresh memory, not the sort
    for column in columns:
        np.sort(column)


def _other_passes(columns: list[np.ndarray]) -> None:
    """What profiling a numeric column does besides sorting it: its sum (the mean), its
    equal neighbours (the longest run) and its centred sum of squares (the variance)."""
    from mlwarden.stats.profile import _centred_sum_of_squares, _longest_true_stretch

    for column in columns:
        mean = float(column.sum()) / column.size
        _longest_true_stretch(column[1:] == column[:-1])
        _centred_sum_of_squares(column, mean)


def breakdown_worker(folder: Path) -> None:
    """CPU seconds of each part of mlwarden's check with columns in series, and of sorting the
    numeric columns alone (what exact quantile edges and histograms took before bucket
    selection, ``mlwarden.stats.select``)."""
    import polars as pl

    import mlwarden.stats.profile as profile
    from mlwarden.detect.drift import FeatureDriftDetector
    from mlwarden.detect.quality import QualityDetector
    from mlwarden.stats.reference import build_reference

    # one thread: CPU seconds of each part, not of the threads' contention
    profile.PARALLEL_ROWS = 1 << 62
    profile.PARALLEL_CELLS = 1 << 62  # (a module attribute since 2026-12-01: set either way)
    ref = pl.read_parquet(folder / "reference.parquet")
    win = pl.read_parquet(folder / "window.parquet")
    numeric = [c for c in ref.columns if c.startswith("num_")]
    ref_cols = [ref.get_column(c).to_numpy() for c in numeric]
    win_cols = [win.get_column(c).to_numpy() for c in numeric]
    state: dict[str, Any] = {}

    def reference() -> None:
        state["reference"] = build_reference(ref)

    def window() -> None:
        state["window"] = profile.Profile.from_data(win, state["reference"].layout)

    parts = {
        "reference_profile": reference,
        "window_profile": window,
        "drift_tests": lambda: FeatureDriftDetector().compare(state["reference"], state["window"]),
        "quality_checks": lambda: QualityDetector().detect(state["reference"], state["window"]),
        "sort_reference_numeric": lambda: _sort_each(ref_cols),
        "sort_window_numeric": lambda: _sort_each(win_cols),
        "other_passes_reference_numeric": lambda: _other_passes(ref_cols),
        "single_pass": lambda: run_single_pass_numpy(ref, win),
    }
    best: dict[str, float] = {}
    for _ in range(5):
        for name, fn in parts.items():
            c0 = time.process_time()
            fn()
            best[name] = min(best.get(name, math.inf), time.process_time() - c0)
    print(json.dumps(best))


def _spawn(
    args: list[str], python: str = sys.executable, src: str | None = None
) -> dict[str, Any] | None:
    env = None
    if src is not None:  # this method's mlwarden from another source folder
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([python, __file__, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"  ({' '.join(args[:2])} failed: {proc.stderr.strip().splitlines()[-1:]})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _print_breakdown(data: str, baseline_src: str | None) -> None:
    trees: dict[str, str | None] = {"mlwarden": None}
    if baseline_src:
        trees["mlwarden_baseline"] = baseline_src
    found = {
        name: _spawn(["--breakdown-worker", "--data", data], src=src) for name, src in trees.items()
    }
    print(f"\nwhere the CPU goes, columns in series (best of 5; load {os.getloadavg()[0]:.1f}):")
    print("| part | " + " | ".join(f"{name} CPU ms" for name in found) + " |")
    print("|---|" + "---|" * len(found))
    parts = next((r for r in found.values() if r), {})
    for part in parts:
        cells = [f"{r[part] * 1e3:.0f}" if r else "-" for r in found.values()]
        print(f"| {part} | " + " | ".join(cells) + " |")
    for name, r in found.items():
        if r:
            check = sum(
                r[p]
                for p in ("reference_profile", "window_profile", "drift_tests", "quality_checks")
            )
            sorts = r["sort_reference_numeric"] + r["sort_window_numeric"]
            print(
                f"{name}: the check {check * 1e3:.0f} ms CPU = {check / r['single_pass']:.1f}x the "
                f"single pass; sorting alone {sorts * 1e3:.0f} ms = {sorts / r['single_pass']:.1f}x"
            )


def _has_evidently(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import evidently, polars"], capture_output=True)
    return probe.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=sorted(METHODS))
    parser.add_argument("--memory-worker", type=int)
    parser.add_argument("--breakdown-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--breakdown", action="store_true", help="CPU per part, in series")
    parser.add_argument("--data")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; best is kept")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--evidently-python", default=sys.executable)
    parser.add_argument("--baseline-src", help="also run mlwarden from this source folder")
    parser.add_argument("--skip-scipy", action="store_true", help="leave plain SciPy out")
    parser.add_argument("--columns", type=int, default=25, help="features (5 categorical)")
    parser.add_argument("--ref-rows", type=int, default=REF_ROWS)
    parser.add_argument("--win-rows", type=int, default=WIN_ROWS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, Path(args.data))
        return
    if args.memory_worker:
        memory_worker(args.memory_worker, 100_000)
        return
    if args.breakdown_worker:
        breakdown_worker(Path(args.data))
        return

    print(
        f"drift check speed: {args.ref_rows:,} reference rows vs {args.win_rows:,} window rows, "
        f"{args.columns} features ({args.columns - len(CATEGORICAL_LEVELS)} numeric, "
        f"{len(CATEGORICAL_LEVELS)} categorical), {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_data(folder, args.ref_rows, args.win_rows, args.columns)
        # Rounds interleave the methods, so a burst of load from other processes hits every
        # method alike; each method's best round is reported, and the ratios per round too.
        rounds: list[dict[str, dict[str, Any]]] = []
        for _ in range(args.repeat):
            done = {}
            for method in METHODS:
                skip_baseline = method == "mlwarden_baseline" and not args.baseline_src
                skip_scipy = method == "scipy" and args.skip_scipy
                if method == "evidently" or skip_baseline or skip_scipy:
                    continue
                src = args.baseline_src if method == "mlwarden_baseline" else None
                result = _spawn(["--worker", method, "--data", tmp], src=src)
                if result:
                    done[method] = result
            rounds.append(done)
            print(
                f"  round {len(rounds)} (load {os.getloadavg()[0]:.1f}): "
                + ", ".join(
                    f"{m} {r['seconds']:.2f} s ({r['cpu']:.2f} s CPU)" for m, r in done.items()
                )
            )
        results: dict[str, dict[str, Any]] = {}
        for method in METHODS:
            runs = [r[method] for r in rounds if method in r]
            if runs:
                results[method] = min(runs, key=lambda r: r["seconds"])
        if args.breakdown:
            _print_breakdown(tmp, args.baseline_src)
        if _has_evidently(args.evidently_python):
            result = _spawn(["--worker", "evidently", "--data", tmp], args.evidently_python)
            if result:
                results["evidently"] = result
        else:
            print("  evidently: not importable, skipped (pip install evidently)")
    ratios = sorted(
        r["mlwarden"]["seconds"] / r["single_pass_numpy"]["seconds"]
        for r in rounds
        if "mlwarden" in r and "single_pass_numpy" in r
    )
    baseline_ratios = sorted(
        r["mlwarden_baseline"]["seconds"] / r["single_pass_numpy"]["seconds"]
        for r in rounds
        if "mlwarden_baseline" in r and "single_pass_numpy" in r
    )
    scipy_ratios = sorted(
        r["scipy"]["seconds"] / r["mlwarden"]["seconds"]
        for r in rounds
        if "mlwarden" in r and "scipy" in r
    )
    single = results["single_pass_numpy"]["seconds"]
    print("\n| method | seconds | x single pass (NumPy) | peak extra memory (MB) |")
    print("|---|---|---|---|")
    for method, r in results.items():
        print(
            f"| {method} | {r['seconds']:.2f} | {r['seconds'] / single:.1f} | {r['peak_mb']:.0f} |"
        )
    ours = results["mlwarden"]
    print(
        f"\nmlwarden: reference profile {ours['reference_profile_s']:.2f} s, "
        f"window profile + drift + quality {ours['window_check_s']:.2f} s"
    )
    print(f"mlwarden drifted columns: {ours['drifted']}")
    print(f"mlwarden quality findings: {ours['quality']}")
    caught = [NULL_COLUMN, "null_burst"] in ours["quality"]
    false_flags = [c for c in ours["drifted"] if c != NULL_COLUMN] + [
        q for q in ours["quality"] if q != [NULL_COLUMN, "null_burst"]
    ]
    print(f"null burst in {NULL_COLUMN} caught: {caught}; false flags: {false_flags or 'none'}")
    if "scipy" in results:
        print(f"plain SciPy flagged: {results['scipy']['drifted']}")
        print(f"speed-up over plain SciPy: {results['scipy']['seconds'] / ours['seconds']:.1f}x")
    if "evidently" in results:
        print(f"Evidently flagged: {results['evidently']['drifted']}")
        print(f"speed-up over Evidently: {results['evidently']['seconds'] / ours['seconds']:.0f}x")
    print(
        f"target: <= 5x single pass -> best {ours['seconds'] / single:.1f}x, "
        f"per round median {ratios[len(ratios) // 2]:.1f}x (all: "
        f"{', '.join(f'{x:.1f}' for x in ratios)})"
    )
    for name in ("mlwarden", "mlwarden_baseline"):
        cpu_ratios = sorted(
            r[name]["cpu"] / r["single_pass_numpy"]["cpu"]
            for r in rounds
            if name in r and "single_pass_numpy" in r
        )
        if cpu_ratios:
            print(
                f"{name}: CPU seconds / the single pass's, per round: median "
                f"{cpu_ratios[len(cpu_ratios) // 2]:.1f}x (all: "
                f"{', '.join(f'{x:.1f}' for x in cpu_ratios)})"
            )
    if baseline_ratios:
        base = results["mlwarden_baseline"]
        print(
            f"baseline ({args.baseline_src}): best {base['seconds'] / single:.1f}x, per round "
            f"median {baseline_ratios[len(baseline_ratios) // 2]:.1f}x (all: "
            f"{', '.join(f'{x:.1f}' for x in baseline_ratios)}); drifted {base['drifted']}, "
            f"quality {base['quality']}"
        )
    if scipy_ratios:
        print(
            f"target: >= 2x faster than plain SciPy -> per round median "
            f"{scipy_ratios[len(scipy_ratios) // 2]:.1f}x (all: "
            f"{', '.join(f'{x:.1f}' for x in scipy_ratios)})"
        )

    if not args.skip_memory:
        print("\nbounded memory: profiling in chunks of 100,000 rows (25 features)")
        print("| records | seconds | peak extra memory (MB) | profile JSON (bytes) |")
        print("|---|---|---|---|")
        for rows in (100_000, 10_000_000):
            r = _spawn(["--memory-worker", str(rows)])
            if r:
                print(
                    f"| {r['rows']:,} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | "
                    f"{r['profile_json_bytes']:,} |"
                )


if __name__ == "__main__":
    main()
