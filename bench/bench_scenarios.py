"""Every built-in scenario, shuffled and in time order, scored: the table of docs/benchmarks.md.

Runs each scenario of ``mlwarden simulate --list`` with seed 0 twice: with its rows shuffled
(a stationary stream; what the test suite runs for the scenarios that shuffle) and in the
dataset's time order, with its natural drift (``mlwarden simulate NAME --order time``). Prints
one Markdown row per run: which expectations failed, the actions with their outcomes, the served
metric over the fault periods with mlwarden acting, with nobody acting and with the fault
removed (the oracle), the harm (mlwarden minus doing nothing, refused requests counted as
errors) and whether mlwarden helped.

    .venv/bin/python bench/bench_scenarios.py --jobs 2
    .venv/bin/python bench/bench_scenarios.py elec_null_burst --order time --out runs/
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from mlwarden.scenarios.simulate import Simulation
from mlwarden.scenarios.spec import builtin_names, load_scenario

HEADER = (
    "| scenario | order | expectations | actions → outcome | metric over fault periods: "
    "mlwarden / doing nothing / oracle | harm (mlwarden minus doing nothing) | helped |\n"
    "|---|---|---|---|---|---|---|"
)
ORDERS = ("shuffled", "time")


def run(job: tuple[str, str, str]) -> tuple[str, str, dict[str, Any], float]:
    """One scenario in one order; its summary is also written to ``folder/NAME-ORDER``."""
    name, order, folder = job
    started = time.perf_counter()
    scenario = load_scenario(name, order=order)  # type: ignore[arg-type]
    result = Simulation(scenario, Path(folder) / f"{name}-{order}", seed=0).run()
    return name, order, result.summary, time.perf_counter() - started


def failed_checks(summary: dict[str, Any]) -> list[str]:
    return [c["expect"] for c in summary["score"]["checks"] if not c["passed"]]


def row(name: str, order: str, summary: dict[str, Any]) -> str:
    score = summary["score"]
    failed = failed_checks(summary)
    verdict = "pass" if score["passed"] else "FAIL: " + "; ".join(failed)
    acted = ", ".join(f"{a['action']}@{a['window']}→{a['outcome']}" for a in summary["actions"])
    harm = score["harm"]
    periods = harm["fault_periods"]
    served = " / ".join(
        "-" if periods[k] is None else f"{periods[k]:.4f}"
        for k in ("mlwarden", "no_action", "oracle")
    )
    delta = periods["delta"]
    change = "-" if delta is None else f"{delta:+.4f}" + (" (worse)" if harm["worse"] else "")
    helped = "yes" if harm["helped"] else "no"
    return f"| {name} | {order} | {verdict} | {acted or 'none'} | {served} | {change} | {helped} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="scenarios to run (default: all)")
    parser.add_argument("--order", choices=[*ORDERS, "both"], default="both")
    parser.add_argument("--jobs", type=int, default=1, help="simulations run in parallel")
    parser.add_argument("--out", type=Path, help="keep each run's files here (default: none)")
    args = parser.parse_args()
    names = args.names or builtin_names()
    orders = ORDERS if args.order == "both" else (args.order,)
    with tempfile.TemporaryDirectory() as tmp:
        folder = str(args.out or tmp)
        # the longest streams first, so parallel workers finish together
        jobs = sorted(
            ((name, order, folder) for name in names for order in orders),
            key=lambda job: -load_scenario(job[0]).stream_length,
        )
        started = time.perf_counter()
        with Pool(args.jobs) as pool:
            results = {(n, o): (s, t) for n, o, s, t in pool.imap_unordered(run, jobs)}
        wall = time.perf_counter() - started
    rows = [row(n, o, results[n, o][0]) for n in names for o in orders]
    failed = [
        f"{n} ({o})" for n in names for o in orders if not results[n, o][0]["score"]["passed"]
    ]
    print(HEADER)
    print("\n".join(rows))
    print(
        f"\n{len(results)} runs in {wall:.0f} s wall with {args.jobs} jobs "
        f"(load average {os.getloadavg()[0]:.1f} at the end)"
    )
    if args.out:
        (args.out / "bench.json").write_text(
            json.dumps({f"{n}-{o}": s for (n, o), (s, _) in results.items()}, indent=1)
        )
    if failed:
        print(f"expectations failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
