"""The records' JSON on the gateway's path: storing records as the gateway's writer and a
simulation send them (dicts, in batches), and reading windows of them back.

Each round runs this tree (and ``--baseline-src``'s, side by side, the order turning from round
to round) in a fresh process: 40,000 records of 8 numeric features, a class and two class
probabilities, stored 200 at a time into a fresh SQLite file through ``Store.insert_records``,
then read back as 40 windows of 1,000 through ``Store.columns_by_arrival``. It prints the CPU
seconds of each part, best of 3 in each process.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_record_json.py [--rounds 3]
        [--baseline-src /tmp/base/src]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from typing import Any

RECORDS = 40_000
BATCH = 200
WINDOW = 1_000


def measure() -> dict[str, float]:
    from mlwarden.domain import ModelSpec
    from mlwarden.store import Store

    rng = random.Random(0)
    features = [{f"f{j}": rng.random() for j in range(8)} for _ in range(RECORDS)]
    answers = [rng.choice(["UP", "DOWN"]) for _ in range(RECORDS)]
    best = {"insert_s": float("inf"), "read_s": float("inf")}
    with tempfile.TemporaryDirectory() as folder:
        for attempt in range(3):
            store = Store(f"sqlite:///{folder}/{attempt}.db")
            spec = ModelSpec.model_validate(
                {
                    "name": "m",
                    "task": "classification",
                    "features": [{"name": f"f{j}", "type": "numeric"} for j in range(8)],
                    "target": "y",
                }
            )
            store.create_model(spec)
            rows = [
                {
                    "id": f"r{i}",
                    "model": "m",
                    "version": 1,
                    "features": features[i],
                    "prediction": answers[i],
                    "scores": {"UP": 0.25, "DOWN": 0.75},
                    "latency_ms": 1.5,
                }
                for i in range(RECORDS)
            ]
            started = time.process_time()
            for i in range(0, RECORDS, BATCH):
                store.insert_records(rows[i : i + BATCH])
            best["insert_s"] = min(best["insert_s"], time.process_time() - started)
            started = time.process_time()
            after = None
            for _ in range(RECORDS // WINDOW):
                columns = store.columns_by_arrival("m", after=after, limit=WINDOW)
                after = (columns["received_at"][-1], str(columns["id"][-1]))
            best["read_s"] = min(best["read_s"], time.process_time() - started)
            store.engine.dispose()
    return best


def _spawn(src: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, __file__, "--worker"], env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-src", help="another tree's src folder, run side by side")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure()))
        return
    trees: list[tuple[str, str | None]] = [("this tree", None)]
    if args.baseline_src:
        trees.append(("baseline", args.baseline_src))
    print(f"{RECORDS:,} records stored {BATCH} at a time, read as {RECORDS // WINDOW} windows")
    print("| round | tree | store CPU s | read CPU s | load |")
    print("|---|---|---|---|---|")
    for round_ in range(1, args.rounds + 1):
        order = trees if round_ % 2 else trees[::-1]
        for name, src in order:
            r = _spawn(src)
            load = os.getloadavg()[0]
            print(f"| {round_} | {name} | {r['insert_s']:.3f} | {r['read_s']:.3f} | {load:.1f} |")


if __name__ == "__main__":
    main()
