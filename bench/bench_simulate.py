"""How fast `mlwarden simulate` runs: records per second through the whole loop.

The target of the scenarios issue is 50,000 records in under a minute on 2 cores. The bundled
electricity data has 45,312 rows, so this runs the longest stream it allows (5,000 reference
rows, then 40,000 streamed records in 40 windows, a null burst in the middle) through the real
gateway, SQLite store, monitor and agent, and reports wall and CPU seconds and records/s.

Two rates are printed, labelled: the stream (records / wall seconds from the first record sent
to the last window closed, what issue 17's target 3 asks for) and the whole command (from this
script's first line, imports, training and the summary included).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_simulate.py
"""

from __future__ import annotations

import time

STARTED = time.perf_counter(), time.process_time()  # before the imports, which are counted

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from mlwarden.scenarios.simulate import Simulation  # noqa: E402
from mlwarden.scenarios.spec import Scenario  # noqa: E402


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
    imported = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as folder:
        simulation = Simulation(scenario, Path(folder), seed=0)
        result = simulation.run()
    ended = time.perf_counter(), time.process_time()
    load = os.getloadavg()[0]
    phases = {"imports": (imported[0] - STARTED[0], imported[1] - STARTED[1])}
    phases |= simulation.seconds
    phases["whole command"] = (ended[0] - STARTED[0], ended[1] - STARTED[1])
    print(
        f"records: {args.records:,} in {len(result.timeline)} windows "
        f"(actions: {[a['action'].value for a in result.summary['actions']]})"
    )
    for phase, (wall, cpu) in phases.items():
        rate = ""
        if phase in ("stream", "whole command"):
            rate = f"  {args.records / wall:8,.0f} records/s (wall)"
        print(f"{phase:>14}: wall {wall:6.2f} s, CPU {cpu:6.2f} s{rate}")
    print(f"load average at the end: {load:.1f}")


if __name__ == "__main__":
    main()
