"""Quality of free-text diagnosis (issue 18): accuracy, unrelated texts, calibration, speed.

Usage::

    .venv/bin/python bench/bench_diagnose_text.py          # the tables of docs/benchmarks.md
    .venv/bin/python bench/bench_diagnose_text.py --fit    # the weight search on the train set

Sets: ``tests/diagnose/oncall_train.yaml`` (the texts the matcher may be tuned on),
``tests/diagnose/oncall_heldout.yaml`` (the frozen held-out third, never used to write rules)
and the older ``tests/diagnose/cases.yaml``. Per set: top-1 and top-3 accuracy of the first
three matches, how many unrelated texts got no match, and the reliability table of the first
match's confidence (of the answers in a confidence bin, how many were right). ``--fit`` runs
the grid search of ``mlwarden.diagnose.evaluate.fit`` on the train set and the older
``cases.yaml`` (never on the held-out file) and prints the weights it chooses (the defaults of
``mlwarden.diagnose.matcher.Weights`` come from it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from mlwarden.diagnose.evaluate import fit, load_set, reliability, score
from mlwarden.diagnose.loader import load_playbooks
from mlwarden.diagnose.matcher import matcher_for

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "train": ROOT / "tests/diagnose/oncall_train.yaml",
    "held-out": ROOT / "tests/diagnose/oncall_heldout.yaml",
}
OLD = ROOT / "tests/diagnose/cases.yaml"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _table(rows: list[dict[str, Any]]) -> None:
    print("| confidence | answers | right | accuracy | mean confidence |")
    print("|---|---|---|---|---|")
    for row in rows:
        acc = "" if row["accuracy"] is None else _pct(row["accuracy"])
        mean = "" if row["mean_confidence"] is None else f"{row['mean_confidence']:.3f}"
        print(f"| {row['bin']} | {row['n']} | {row['right']} | {acc} | {mean} |")


def report() -> None:
    print("| set | texts | top-1 | top-3 | unrelated -> no match |")
    print("|---|---|---|---|---|")
    answers: dict[str, list[tuple[float, bool]]] = {}
    for name, path in SETS.items():
        data = load_set(path)
        result = score(data["labelled"], data["unrelated"])
        answers[name] = result["answers"]
        print(
            f"| {name} (`{path.name}`) | {result['n']} | {_pct(result['top1'])} | "
            f"{_pct(result['top3'])} | {result['unrelated_no_match']}/{result['unrelated']} |"
        )
    old = load_set(OLD)
    for group in ("labelled", "holdout"):
        result = score(old[group], old["unrelated"] if group == "labelled" else [])
        unrelated = (
            f"{result['unrelated_no_match']}/{result['unrelated']}" if group == "labelled" else ""
        )
        print(
            f"| `cases.yaml` {group} | {result['n']} | {_pct(result['top1'])} | "
            f"{_pct(result['top3'])} | {unrelated} |"
        )
    for name, rows in answers.items():
        print(f"\nReliability of the first match's confidence, {name}:\n")
        _table(reliability(rows))
    matcher = matcher_for(load_playbooks())
    text = (Path(SETS["train"]).read_text(encoding="utf-8") * 3)[:5_000]
    matcher.rank(text)
    start = time.perf_counter()
    for _ in range(5):
        matcher.rank(text)
    print(f"\nranking a 5,000-character text: {(time.perf_counter() - start) / 5 * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="search the weights on the train set")
    args = parser.parse_args()
    if args.fit:
        # the training texts, and the older cases.yaml (its texts were tuned on before)
        data, old = load_set(SETS["train"]), load_set(OLD)
        weights, log = fit(
            data["labelled"] + old["labelled"] + old["holdout"],
            data["unrelated"] + old["unrelated"],
        )
        print("\n".join(log))
        print(f"chosen: {weights}")
        return
    report()


if __name__ == "__main__":
    main()
