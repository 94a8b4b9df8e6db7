"""Every built-in scenario, scored: the "Scenario results" table of docs/benchmarks.md.

Runs each scenario of ``mlwarden simulate --list`` with seed 0 (what the test suite runs and
asserts) and prints one Markdown row per scenario: whether its expectations hold, how many
windows each expected finding took, the remedial actions with their outcomes, the playbook that
best matched each incident, false-alarm windows, and the served metric over the fault periods
with mlwarden acting, with nobody acting and with the fault removed.

    .venv/bin/python bench/bench_scenarios.py
    .venv/bin/python bench/bench_scenarios.py elec_null_burst elec_unit_change
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from mlwarden.scenarios.simulate import Simulation
from mlwarden.scenarios.spec import builtin_names, load_scenario

HEADER = (
    "| scenario | expectations | detection delay (windows) | remedial actions → outcome "
    "| playbook matched | false-alarm windows (clean) "
    "| metric over fault periods: mlwarden / doing nothing / oracle |\n"
    "|---|---|---|---|---|---|---|"
)


def row(name: str, summary: dict[str, Any]) -> str:
    score = summary["score"]
    delays = [str(c["delay_windows"]) for c in score["checks"] if "delay_windows" in c]
    remedies = [a for a in summary["actions"] if a["action"] not in {"alert", "none"}]
    alerts = sum(1 for a in summary["actions"] if a["action"] == "alert")
    acted = ", ".join(f"{a['action']}→{a['outcome']}" for a in remedies) or "none"
    playbooks = sorted({i["playbook"] for i in summary["incidents"] if i["playbook"]})
    recovery = score["recovery"]
    served = [recovery.get(k) for k in ("mlwarden", "no_action", "oracle")]
    metric = " / ".join(str(v) for v in served) if any(v is not None for v in served) else "-"
    return (
        f"| {name} | {'pass' if score['passed'] else 'FAIL'} | {', '.join(delays) or '-'} "
        f"| {acted} (+{alerts} alerts) | {', '.join(playbooks) or '-'} "
        f"| {score['false_alarm_windows']} of {score['clean_windows']} | {metric} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="scenarios to run (default: all)")
    args = parser.parse_args()
    names = args.names or builtin_names()
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            result = Simulation(load_scenario(name), Path(tmp) / name, seed=0).run()
            rows.append(row(name, result.summary))
            if not result.passed:
                failed.append(name)
    print(HEADER)
    print("\n".join(rows))
    if failed:
        print(f"\nexpectations failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
