"""Every built-in scenario, shuffled and in time order, scored: the table of docs/benchmarks.md.

Runs each scenario of ``mlwarden simulate --list`` with seed 0 twice: with its rows shuffled
(a stationary stream; what the test suite runs for the scenarios that shuffle) and in the
dataset's time order, with its natural drift (``mlwarden simulate NAME --order time``). Prints
one Markdown row per run: which expectations failed, the actions with their outcomes, the served
metric over the fault periods with mlwarden acting, with nobody acting and with the fault
removed (the oracle), the harm (mlwarden minus doing nothing, refused requests counted as
errors) and whether mlwarden helped.

    .venv/bin/python bench/bench_scenarios.py --jobs 2 --out runs/
    .venv/bin/python bench/bench_scenarios.py elec_null_burst --order time --out runs/

With ``--out``, each run's files stay in ``runs/NAME-ORDER/``; a run whose summary.json is
already there is not repeated but scored again against the scenario file as it is now, and
``--no-run`` prints the table from what is stored (runs not made yet show as "not run"). Each
scenario's own order runs first (the suite's cases; the scenarios built for time order first
of all), then the other order, longest streams first. A scenario that fixes its order
(``order: time`` in its file: its premise is its data's own order, as ``elec_real_drift``'s real
drift) is not run in the other one; that row reads "n/a: the scenario fixes time order".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from mlwarden.scenarios.score import score
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


def stored(folder: Path, name: str, order: str) -> dict[str, Any] | None:
    """A stored run's summary, scored again against the scenario file as it is now (a run is
    deterministic; its expectations may have changed since)."""
    run = folder / f"{name}-{order}"
    if not (run / "summary.json").exists():
        return None
    summary = json.loads((run / "summary.json").read_text())
    timeline = json.loads((run / "timeline.json").read_text())
    scenario = load_scenario(name, order=order)  # type: ignore[arg-type]
    summary["score"] = score(scenario, timeline, summary["actions"], summary["incidents"])
    return summary


def row(name: str, order: str, summary: dict[str, Any] | None, fixed: str | None = None) -> str:
    """One Markdown row; ``fixed``: the order the scenario fixes, when it is not ``order`` (the
    run is not made: its premise is its data's own order)."""
    if fixed is not None and fixed != order:
        return f"| {name} | {order} | n/a: the scenario fixes {fixed} order | | | | |"
    if summary is None:
        return f"| {name} | {order} | not run | | | | |"
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
    parser.add_argument("--no-run", action="store_true", help="only print what --out holds")
    args = parser.parse_args()
    names = args.names or builtin_names()
    orders = ORDERS if args.order == "both" else (args.order,)
    own = {name: "shuffled" if load_scenario(name).shuffle else "time" for name in names}
    # a scenario that fixes its order (its premise is its data's own order) runs only in it
    fixed = {name: load_scenario(name).order for name in names}
    wanted = [(n, o) for n in names for o in orders if fixed[n] in (None, o)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.out or tmp)
        results = {(n, o): found for n, o in wanted if (found := stored(folder, n, o)) is not None}
        todo = sorted(
            ((n, o, str(folder)) for n, o in wanted if (n, o) not in results),
            key=lambda job: (
                job[1] != own[job[0]],
                own[job[0]] != "time",
                -load_scenario(job[0]).stream_length,
            ),
        )
        started = time.perf_counter()
        if todo and not args.no_run:
            with Pool(args.jobs) as pool:
                for n, o, summary, seconds in pool.imap_unordered(run, todo):
                    results[n, o] = summary
                    print(f"{n} ({o}): {seconds:.0f} s", file=sys.stderr, flush=True)
        wall = time.perf_counter() - started
    print(HEADER)
    print("\n".join(row(n, o, results.get((n, o)), fixed[n]) for n in names for o in orders))
    print(
        f"\n{len(todo) if not args.no_run else 0} runs in {wall:.0f} s wall with {args.jobs} "
        f"jobs (load average {os.getloadavg()[0]:.1f} at the end)"
    )
    failed = [f"{n} ({o})" for (n, o), s in results.items() if not s["score"]["passed"]]
    if failed:
        print(f"expectations failed: {', '.join(sorted(failed))}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
