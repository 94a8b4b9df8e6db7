"""Does a retrain's validation predict what it serves? Time-ordered electricity, no fault.

The numbers behind ``agent.hindsight``. The champion is the scenarios' gradient boosting
recipe fitted on rows 20,000-23,500 of the bundled electricity data (the reference period of
the built-in scenarios); the stream starts at row 25,000, in windows of 1,000 rows, with labels
200 rows late. At each window t a retrain fits the same recipe on the reference rows and the
newest 5,000 labelled stream rows, as ``retrain`` does, and three numbers are printed, each a
gain in accuracy points over the champion:

* ``validated``: the candidate fitted on the oldest 70 % of those rows, scored on the newest
  30 % (``gap`` rows left out between the two): the retrain's own validation;
* ``serves t..t+5``: the candidate fitted on all of them, scored on the next six windows;
* ``serves t+2..t+5``: the same, from two windows on (after a canary's judgement).

Run: ``python bench/bench_retrain_hindsight.py [--gaps 0 1000 2000]`` (about a minute per gap
on an idle 2-core machine).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from sklearn.base import clone

from mlwarden.assistant.training import build_pipeline, make_estimator
from mlwarden.datasets import load
from mlwarden.domain import Task

WINDOW, DELAY, RECENT, HOLDOUT = 1000, 200, 5000, 0.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaps", type=int, nargs="+", default=[0, 1000, 2000])
    args = parser.parse_args()
    data = load("electricity")
    features = [c for c in data.columns if c != "target"]
    reference = data.iloc[20000:23500]
    stream = data.iloc[25000:41000].reset_index(drop=True)
    estimator = make_estimator(Task.CLASSIFICATION, "gradient_boosting", random_state=0)
    champion = build_pipeline(reference[features], estimator, scale=False).fit(
        reference[features], reference["target"]
    )

    def fit(rows: pd.DataFrame) -> object:
        both = pd.concat([reference, rows])
        return clone(champion).fit(both[features], both["target"])

    def gain(model: object, rows: pd.DataFrame) -> float:
        right = rows["target"].to_numpy()
        return float(
            np.mean(model.predict(rows[features]) == right)  # type: ignore[attr-defined]
            - np.mean(champion.predict(rows[features]) == right)
        )

    print("| gap | window t | validated | serves t..t+5 | serves t+2..t+5 |")
    print("|---|---|---|---|---|")
    for gap in args.gaps:
        for t in range(3, 14):
            labelled = stream.iloc[max(0, t * WINDOW - DELAY - RECENT) : t * WINDOW - DELAY]
            cut = int(len(labelled) * (1 - HOLDOUT))
            train, held = labelled.iloc[: max(0, cut - gap)], labelled.iloc[cut:]
            if len(train) < 200:
                continue
            full = fit(labelled)
            print(
                f"| {gap} | {t} | {gain(fit(train), held):+.3f} "
                f"| {gain(full, stream.iloc[t * WINDOW : (t + 6) * WINDOW]):+.3f} "
                f"| {gain(full, stream.iloc[(t + 2) * WINDOW : (t + 6) * WINDOW]):+.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
