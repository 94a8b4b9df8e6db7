"""How fast `mlwarden simulate` runs: records per second through the whole loop.

The target of the scenarios issue is 50,000 records in under a minute on 2 cores. The bundled
electricity data has 45,312 rows, so this runs the longest stream it allows (5,000 reference
rows, then 40,000 streamed records in 40 windows, a null burst in the middle) through the real
gateway, SQLite store, monitor and agent, and reports wall and CPU seconds and records/s.

    .venv/bin/python bench/bench_simulate.py
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from mlwarden.scenarios.simulate import Simulation
from mlwarden.scenarios.spec import Scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=40_000)
    args = parser.parse_args()
    scenario = Scenario.model_validate(
        {
            "name": "bench_simulate",
            "dataset": "electricity",
            "shuffle": True,
            "reference": [0, 5000],
            "stream": [5000, 5000 + args.records],
            "window": 1000,
            "label_delay": 200,
            "faults": [
                {
                    "kind": "null_burst",
                    "feature": "nswdemand",
                    "rate": 0.5,
                    "start": args.records // 2,
                    "end": args.records // 2 + 5000,
                },
            ],
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        result = Simulation(scenario, Path(folder), seed=0).run()
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    load = os.getloadavg()[0]
    print(
        f"records: {args.records:,} in {len(result.timeline)} windows "
        f"(actions: {[a['action'] for a in result.summary['actions']]})"
    )
    print(
        f"wall: {wall:.1f} s  ({args.records / wall:,.0f} records/s); "
        f"CPU: {cpu_s:.1f} s ({args.records / cpu_s:,.0f} records per CPU-second)"
    )
    print(
        f"50,000 records at this rate: {50_000 / args.records * wall:.0f} s wall; "
        f"load average at the end: {load:.1f}"
    )


if __name__ == "__main__":
    main()
