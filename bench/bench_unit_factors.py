"""Unit changes on real data: false findings in time order, and what a known factor looks like.

The data-quality detector's unit-change checks (``detect.quality``: a power of ten by the ratio
of spreads and means, a known unit factor such as miles to kilometres by the shape of the whole
distribution) must not mistake real drift for a converted column. This runs the detector on the
bundled datasets in their time order (the weeks and seasons nobody tuned on), every window
against each reference block, and counts the ``unit_change`` findings: every one is false (no
column changes unit in the data). Then, for the same windows, each column that could carry a
unit (never negative, at least ``rescale_min_edges`` distinct reference quantiles) is multiplied
by a known factor, and the share of those windows found (and with the right factor) is given.

References: the scenarios' own blocks (``reference:`` of the built-in scenarios of each
dataset) and, to look wider, a block of ``--block`` rows every ``--block`` rows; windows of
``--window`` rows (100 for titanic) after the block, to the end of the data.

    .venv/bin/python bench/bench_unit_factors.py
    .venv/bin/python bench/bench_unit_factors.py --factor 1.609344 --json /tmp/units.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from typing import Any

import pandas as pd

from mlwarden.datasets import DATASETS, load
from mlwarden.detect.quality import QualityDetector
from mlwarden.scenarios.spec import builtin_names, load_scenario
from mlwarden.stats.profile import NumericStats, Profile, ProfileLayout


def references(name: str, rows: int, block: int) -> list[tuple[int, int]]:
    """The scenarios' reference blocks of this dataset, and one every ``block`` rows."""
    found = set()
    for scenario_name in builtin_names():
        scenario = load_scenario(scenario_name)
        if scenario.dataset == name:
            start, end = scenario.reference
            found.add((int(start), int(end)))
    size = min(block, rows // 2)
    found |= {(start, start + size) for start in range(0, rows - 2 * size + 1, size)}
    return sorted(found)


def unit_findings(reference: Profile, window: Profile) -> list[Any]:
    return [
        f
        for f in QualityDetector().detect(reference, window)
        if f.evidence.get("check") == "unit_change"
    ]


def eligible(stats: NumericStats, detector: QualityDetector) -> bool:
    """A column that could carry a unit the known-factor check looks at."""
    return (
        stats.min >= 0 and stats.max > 1.0 and stats.bins.edges.size >= detector.t.rescale_min_edges
    )


def run(window_rows: int, block: int, factor: float) -> dict[str, Any]:
    detector = QualityDetector()
    out: dict[str, Any] = {"datasets": {}, "false": [], "factor": factor}
    for name, dataset in DATASETS.items():
        frame = load(name)
        if dataset.target in frame.columns:
            frame = frame.drop(columns=[dataset.target])
        numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
        size = 100 if len(frame) < 5000 else window_rows
        checks = windows = scaled = found = right = 0
        for start, end in references(name, len(frame), block):
            layout = ProfileLayout.fit(frame.iloc[start:end])
            reference = Profile.from_data(frame.iloc[start:end], layout)
            columns = [
                c
                for c in numeric
                if isinstance(reference.features.get(c), NumericStats)
                and eligible(reference.features[c], detector)  # type: ignore[arg-type]
            ]
            for at in range(end, len(frame) - size + 1, size):
                chunk = frame.iloc[at : at + size]
                profile = Profile.from_data(chunk, layout)
                windows += 1
                checks += len(numeric)
                for f in unit_findings(reference, profile):
                    out["false"].append(
                        {
                            "dataset": name,
                            "reference": [start, end],
                            "window": [at, at + size],
                            "feature": f.features[0],
                            "message": f.message,
                        }
                    )
                for column in columns:
                    converted = chunk.assign(**{column: chunk[column] * factor})
                    hits = [
                        f
                        for f in unit_findings(reference, Profile.from_data(converted, layout))
                        if column in f.features
                    ]
                    scaled += 1
                    found += bool(hits)
                    tally = out.setdefault("columns", {}).setdefault(f"{name}.{column}", [0, 0])
                    tally[0] += 1
                    tally[1] += bool(hits)
                    right += any(
                        math.isclose(float(f.evidence.get("factor") or 0), factor, rel_tol=1e-6)
                        for f in hits
                    )
        out["datasets"][name] = {
            "windows": windows,
            "column_checks": checks,
            "false_findings": sum(1 for f in out["false"] if f["dataset"] == name),
            "converted_windows": scaled,
            "converted_found": found,
            "converted_right_factor": right,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=1000, help="rows a window")
    parser.add_argument("--block", type=int, default=5000, help="rows a reference block")
    parser.add_argument("--factor", type=float, default=1.609344, help="the conversion applied")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    started = time.perf_counter()
    result = run(args.window, args.block, args.factor)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print("| dataset | windows | column checks | false unit findings | converted windows found |")
    print("|---|---|---|---|---|")
    for name, d in result["datasets"].items():
        print(
            f"| {name} | {d['windows']} | {d['column_checks']} | {d['false_findings']} | "
            f"{d['converted_found']} of {d['converted_windows']} "
            f"({d['converted_right_factor']} with x{args.factor:g}) |"
        )
    for column, (tried, hit) in sorted(result.get("columns", {}).items()):
        print(f"converted {column}: found in {hit} of {tried} windows")
    by_feature = Counter(f"{f['dataset']}.{f['feature']}" for f in result["false"])
    for feature, count in by_feature.most_common():
        print(f"false: {feature}: {count}")
    for f in result["false"][:10]:
        print(f"  {f['reference']} {f['window']}: {f['message']}")
    print(f"{result['seconds']} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
