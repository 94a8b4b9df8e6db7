"""How fast `mlwarden simulate` runs: records per second through the whole loop.

The target of the scenarios issue is 50,000 records in under a minute on 2 cores. The bundled
electricity data has 45,312 rows, so this runs the longest stream it allows (5,000 reference
rows, then 40,000 streamed records in 40 windows, a null burst in the middle) through the real
gateway, SQLite store, monitor and agent, and reports wall and CPU seconds and records/s.

Two rates are printed, labelled: the stream (records / wall seconds from the first record sent
to the last window closed, what issue 17's target 3 asks for) and the whole command (from this
script's first line, imports, training and the summary included).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_simulate.py
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_simulate.py --parts

``--parts`` also prints the CPU seconds spent inside the stream's main parts (each method
wrapped with a ``time.process_time`` counter: a few microseconds a call, unlike a profiler's
cost per function call, which inflates the parts made of many small calls), and in the
garbage collector's passes during the stream. A nested part's time is inside its parent's; a
collection's is inside whichever part it interrupted.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter(), time.process_time()  # before the imports, which are counted

import argparse  # noqa: E402
import collections  # noqa: E402
import functools  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from mlwarden.scenarios.simulate import Simulation  # noqa: E402
from mlwarden.scenarios.spec import Scenario  # noqa: E402

# (module, class, method, label): the stream's parts, nested ones indented under their parent
PARTS = (
    ("mlwarden.serving.gateway", "Gateway", "predict", "gateway requests"),
    ("mlwarden.serving.predictors", "LocalPredictor", "predict", "  the model's calls"),
    ("mlwarden.store.records", "RecordTables", "insert_records", "  storing records"),
    ("mlwarden.store.records", "RecordTables", "add_feedback", "labels"),
    ("mlwarden.scenarios.simulate", "Simulation", "_close_window", "window closing"),
    ("mlwarden.agent.monitor_source", "MonitorSource", "closed_windows", "  closing windows"),
    ("mlwarden.monitor.engine", "Monitor", "process", "    the monitor engine"),
    ("mlwarden.store.records", "RecordTables", "columns_by_arrival", "    window reads"),
    ("mlwarden.agent.loop", "Agent", "_handle", "  decisions and verification"),
)


def count_parts() -> tuple[collections.Counter[str], collections.Counter[str]]:
    """Wrap each part's method with a CPU-time counter; returns (seconds, calls) by label."""
    import importlib
    import inspect

    seconds: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    for module, owner_name, method, label in PARTS:
        owner = getattr(importlib.import_module(module), owner_name)
        original = getattr(owner, method)

        def counted(original=original, label=label):  # type: ignore[no-untyped-def]
            if inspect.iscoroutinefunction(original):

                @functools.wraps(original)
                async def run_async(*args, **kwargs):  # type: ignore[no-untyped-def]
                    started = time.process_time()
                    try:
                        return await original(*args, **kwargs)
                    finally:
                        seconds[label] += time.process_time() - started
                        calls[label] += 1

                return run_async

            @functools.wraps(original)
            def run(*args, **kwargs):  # type: ignore[no-untyped-def]
                started = time.process_time()
                try:
                    return original(*args, **kwargs)
                finally:
                    seconds[label] += time.process_time() - started
                    calls[label] += 1

            return run

        setattr(owner, method, counted())
    return seconds, calls


def count_collections() -> dict[str, float]:
    """CPU seconds and number of the garbage collector's passes while the stream runs, by
    generation (``gc.callbacks``; a pass's own cost, wherever it interrupted)."""
    import gc

    from mlwarden.scenarios.simulate import Simulation

    spent: dict[str, float] = collections.defaultdict(float)
    state = {"streaming": False, "started": 0.0}

    def collected(phase: str, info: dict[str, int]) -> None:
        if not state["streaming"]:
            return
        if phase == "start":
            state["started"] = time.process_time()
        else:
            spent[f"generation {info['generation']}"] += time.process_time() - state["started"]
            spent[f"generation {info['generation']} passes"] += 1

    gc.callbacks.append(collected)
    stream = Simulation._stream

    @functools.wraps(stream)
    async def streaming(self):  # type: ignore[no-untyped-def]
        state["streaming"] = True
        try:
            return await stream(self)
        finally:
            state["streaming"] = False

    Simulation._stream = streaming  # type: ignore[method-assign]
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=40_000)
    parser.add_argument("--parts", action="store_true", help="CPU seconds of the stream's parts")
    args = parser.parse_args()
    parts = count_parts() if args.parts else None
    collections_spent = count_collections() if args.parts else None
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
    if parts is not None:
        seconds, calls = parts
        for _, _, _, label in PARTS:
            print(f"{label:<32} {seconds[label]:6.2f} s CPU ({calls[label]} calls)")
    if collections_spent is not None:
        for generation in ("generation 0", "generation 1", "generation 2"):
            print(
                f"garbage collection, {generation:<14} {collections_spent[generation]:6.2f} s CPU "
                f"({collections_spent[generation + ' passes']:.0f} passes, within the parts)"
            )
    print(f"load average at the end: {load:.1f}")


if __name__ == "__main__":
    main()
