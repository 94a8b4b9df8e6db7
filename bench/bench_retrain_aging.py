"""Do retrains age well? Past retrains replayed on a scenario's stream, by age: the numbers
behind ``agent.aging``.

Each scenario is simulated (seed 0, in the order given), then, on its stored records, the
retrain recipe is replayed at every window h >= 1: the candidate ``hindsight.candidate_at``
fits (every labelled record that had arrived by window h, the reference in front) against the
live version at the start (the champion), on every later whole window. Printed per scenario:

* the champion's metric by window (accuracy; for a regression the negated mean absolute
  error, so that higher is better there too);
* one row per candidate: its gain over the champion on each window from h on (the first two
  are its fresh windows, the ones a hindsight check or a canary sees);
* the aging check as the agent would make it at the end of each window: the last
  ``AGED_CANDIDATES`` candidates at least ``AGE`` windows old, each scored from its ``AGE``-th
  window on, the mean of their mean gains (``refuse`` when it is below zero).

Run: ``python bench/bench_retrain_aging.py control_electricity:time elec_label_shift:shuffled``
(about 20 s per scenario on an idle 2-core machine).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np

from mlwarden.agent.aging import AGE, AGED_CANDIDATES, MIN_CELLS
from mlwarden.agent.hindsight import candidate_at
from mlwarden.agent.policy import Policy
from mlwarden.agent.remedies.retrain import load_estimator, score_predictions
from mlwarden.domain import Task
from mlwarden.scenarios.simulate import Simulation, scenario_policy
from mlwarden.scenarios.spec import load_scenario
from mlwarden.serving.predictors import LocalPredictor
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store


def grid(name: str, order: str, folder: Path) -> None:
    scenario = load_scenario(name, order=order)  # type: ignore[arg-type]
    Simulation(scenario, folder, seed=0).run()
    store = Store(f"sqlite:///{folder / 'simulation.db'}", migrate=False)
    model = store.list_models()[0].name
    policy: Policy = scenario_policy(scenario)
    repo = AgentRepo(store)
    spec = store.get_model(model)
    champion_version = store.list_versions(model)[0].number
    champion = LocalPredictor(load_estimator(store.load_artifact(model, champion_version)), spec)
    newest = repo.last_window(model) or 0

    def window(w: int) -> list[dict[str, Any]]:
        after = repo.window_end(model, w - 1) if w else None
        rows = store.records_by_arrival(model, after=after, until=repo.window_end(model, w))
        return [r for r in rows if r.get("label") is not None and not r.get("error")]

    task = spec.task or Task.CLASSIFICATION

    def accuracy(predictor: LocalPredictor, rows: list[dict[str, Any]]) -> float:
        answers = [a.prediction for a in predictor.predict([r["features"] for r in rows])]
        truth = np.array([r["label"] for r in rows], dtype=object)
        return score_predictions(task, truth, np.array(answers, dtype=object))[1]

    rows = {w: window(w) for w in range(newest + 1)}
    base = {w: accuracy(champion, rows[w]) for w in rows if rows[w]}
    digits = 3 if task is Task.CLASSIFICATION else 1
    print(f"\n### {name} ({order})\n")
    print("champion metric by window: " + " ".join(f"{w}:{a:.{digits}f}" for w, a in base.items()))
    gains: dict[tuple[int, int], float] = {}
    print("\n| fitted at | gain over the champion on windows h, h+1, ... |\n|---|---|")
    for h in range(1, newest + 1):
        candidate, why = candidate_at(store, model, champion_version, h, policy.for_model(model))
        if candidate is None:
            print(f"| {h} | ({why}) |")
            continue
        predictor = LocalPredictor(candidate, spec)
        for w in range(h, newest + 1):
            if w in base:
                gains[h, w] = accuracy(predictor, rows[w]) - base[w]
        print(f"| {h} | " + " ".join(f"{gains[h, w]:+.{digits}f}" for w in range(h, newest + 1)
                                     if (h, w) in gains) + " |")  # fmt: skip
    print("\n| end of window | cells | retrains' mean gain from age 2 | aging check |")
    print("|---|---|---|---|")
    for d in range(AGE + 1, newest + 1):
        first = max(1, d - AGE - AGED_CANDIDATES + 1)
        cells = [
            (h, g) for (h, w), g in gains.items() if first <= h <= d - AGE and h + AGE <= w <= d
        ]
        if len(cells) < MIN_CELLS:
            print(f"| {d} | {len(cells)} | | too few cells |")
            continue
        fitted = sorted({h for h, _ in cells})
        mean = fmean(fmean(g for h, g in cells if h == f) for f in fitted)
        verdict = "refuse" if mean < 0 else "pass"
        print(f"| {d} | {len(cells)} | {mean:+.{digits + 1}f} | {verdict} |")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="scenario:order (order: time or shuffled)")
    args = parser.parse_args()
    for run in args.runs:
        name, _, order = run.partition(":")
        with tempfile.TemporaryDirectory() as folder:
            grid(name, order or "time", Path(folder))


if __name__ == "__main__":
    main()
