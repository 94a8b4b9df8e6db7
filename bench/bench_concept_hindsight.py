"""Does the hindsight tell a lasting change of the relation from seasonal drift? Time order.

The numbers behind the concept-drift half of ``agent.hindsight``. A concept-drift retrain learns
the labelled records after the change point alone (no reference in front). Before it is asked
for, the same recipe is replayed: fitted on the windows after the change up to the window it is
replayed from, scored against the champion on the labelled windows since (paired, as a canary:
``agent.canary.judge_paired``, a gain whose 95 % interval lies above ``canary_min_gain``). Two
choices of the window it is replayed from, at each decision window t after the change c:

* ``sliding``: ``retrain.hindsight_windows`` (3) windows back, as for a drop on moving inputs
  (the candidate learnt windows c..t-3, judged on t-2..t);
* ``first``: always from c + 1 (the candidate learnt window c alone, judged on every window
  since): a changed relation is a lasting one.

And what the retrain asked at t would have served: fitted on the newest 5,000 labelled records
after the change (as ``retrain`` does), its gain over the champion on the next 6 and the next
18 windows (the rows past the scenario's stream, as far as the dataset goes: electricity ends
15,312 rows after the stream's start).

Scenarios: ``control_flights`` (New York departures 2013, no fault; the concept-drift incident
opened at window 9 in its run) and ``elec_time_concept_change`` (electricity, the price
relation flips above the NSW price median from window 5; the concept-drift incident opened at
window 1 on the natural drift before it).

Run: ``python bench/bench_concept_hindsight.py`` (about a minute on an idle 2-core machine).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from mlwarden.agent.canary import Paired, judge_paired
from mlwarden.agent.policy import load_policy_text
from mlwarden.domain import Task
from mlwarden.scenarios.data import prepare, train
from mlwarden.scenarios.spec import load_scenario

WINDOW, DELAY, RECENT = 1000, 200, 5000
POLICY = load_policy_text("defaults: {}").for_model("bench")


def stream_of(name: str, rows: int) -> tuple[Any, pd.DataFrame, list[str], str]:
    """The champion, the scenario's stream lengthened to ``rows`` (its fault applied) and the
    feature and target names."""
    scenario = load_scenario(name, order="time")
    start = scenario.stream[0]
    data = prepare(scenario.model_copy(update={"stream": (start, start + rows)}), seed=0)
    stream = data.stream.copy()
    for fault in scenario.faults:  # only the relation flip is needed here
        assert fault.kind == "concept_change", fault.kind
        values = stream[fault.feature].to_numpy(dtype=float)
        cut = float(np.nanmedian(values[: scenario.stream[1] - start]))
        region = np.arange(len(stream)) >= fault.start
        region &= values > cut if fault.region == "above" else values <= cut
        stream.loc[region, data.target] = 1 - stream.loc[region, data.target]
    return train(scenario.model, data, seed=0), stream, data.features, data.target


def rows_of(name: str, change: int, rows: int) -> None:
    """The table's rows of one scenario."""
    champion, stream, features, target = stream_of(name, rows)

    def fit(lo: int, hi: int) -> Any:
        rows = stream.iloc[max(lo, hi - RECENT) : hi]
        return clone(champion).fit(rows[features], rows[target])

    def judge(model: Any, lo: int, hi: int) -> str:
        rows = stream.iloc[lo:hi]
        x, y = rows[features], rows[target].to_numpy()
        paired = Paired(
            truth=y.astype(object),
            candidate=model.predict(x).astype(object),
            champion=champion.predict(x).astype(object),
        )
        verdict = judge_paired(paired, Task.CLASSIFICATION, "accuracy", POLICY, {})
        low = verdict.figures["paired"]["interval"][0]
        diff = verdict.figures["paired"]["difference"]
        return f"{diff:+.3f} ({low:+.3f}) {verdict.decision}"

    def serves(model: Any, lo: int, hi: int) -> float:
        rows = stream.iloc[lo:hi]
        x, y = rows[features], rows[target].to_numpy()
        return float(np.mean(model.predict(x) == y) - np.mean(champion.predict(x) == y))

    begin = change * WINDOW
    for t in range(max(change + 2, 4), max(change + 2, 4) + 6):
        labelled = (t + 1) * WINDOW - DELAY  # the decision at the end of window t
        sliding = max(change + 1, t + 1 - POLICY.retrain.hindsight_windows) * WINDOW
        first = (change + 1) * WINDOW
        asked = fit(begin, labelled)
        after = (t + 1) * WINDOW
        print(
            f"| {name} | {change} | {t} | {judge(fit(begin, sliding), sliding, labelled)} "
            f"| {judge(fit(begin, first), first, labelled)} "
            f"| {serves(asked, after, after + 6 * WINDOW):+.3f} "
            f"| {serves(asked, after, after + 18 * WINDOW):+.3f} |"
        )


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    print("| scenario | change c | window t | sliding: gain (95 % low) | first: gain (95 % low) "
          "| retrain at t serves t+1..t+6 | t+1..t+18 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    rows_of("control_flights", 9, 32000)
    rows_of("elec_time_concept_change", 1, 15312)


if __name__ == "__main__":
    main()
