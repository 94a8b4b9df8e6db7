"""Run every benchmark of bench/ one after the other (they share the machine: never in parallel).

    .venv/bin/python bench/run_all.py            # all of them, default sizes
    .venv/bin/python bench/run_all.py gateway    # only those whose name contains "gateway"

Each script prints its own figures; copy them, with the date and machine, to docs/benchmarks.md.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(word in s.stem for word in argv)]
    failed = []
    for script in scripts:
        print(f"=== {script.name}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(script)])
        took = time.monotonic() - started
        print(f"=== {script.name}: exit {code} after {took:.0f} s", flush=True)
        if code:
            failed.append(script.name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
