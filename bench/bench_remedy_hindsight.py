"""Every remedy the agent has, scored in hindsight over a scenario's fault periods.

``mlwarden simulate`` scores what the agent did against doing nothing. This asks the question
before it: what would each remedy have served, had it been in place over every fault period
from the fault's first record on (the best any timing could do)? A scenario that expects the
agent to help (``helps: true``: better than doing nothing by more than the tolerance) is only
fair when one of these does.

Rebuilds the scenario's data and models as ``mlwarden simulate`` does (same seed, same split,
same faults on the rows) and scores, per window of the fault periods (the score's own windows,
grace windows included), the answers of:

* ``keep``: the champion on the faulty rows (doing nothing, as ``simulate`` computes it for
  faults on the rows: serving faults are not replayed here);
* ``fallback``: the scenario's fallback model on the faulty rows;
* ``repair:<rule>``: the champion on the rows mended by a fill rule for every feature a
  ``null_burst`` nulled: ``agent`` (the agent's own plan, ``agent.repair.plan_repair``, from
  the champion's reference sample), ``median``, ``mean`` (of the reference), ``hot_deck`` (a
  random reference value), ``previous`` (the last value seen before in the stream: only
  meaningful in time order, where neighbouring rows are neighbouring hours), and for
  ``unit_change`` faults the agent's own plan;
* ``retrain_without``: the champion's recipe fitted on the reference's training rows without
  the broken features (a retrain the agent does not have; how much the features are worth);
* ``oracle``: the champion on the clean rows.

    .venv/bin/python bench/bench_remedy_hindsight.py flights_null_burst --order shuffled
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
import pandas as pd

from mlwarden.agent.repair import plan_repair
from mlwarden.domain import Finding, FindingKind, Task
from mlwarden.scenarios.data import ScenarioData, prepare, train
from mlwarden.scenarios.faults import inject
from mlwarden.scenarios.score import fault_windows, in_fault
from mlwarden.scenarios.simulate import clean_rows, metric_of
from mlwarden.scenarios.spec import Scenario, load_scenario
from mlwarden.serving.repair import repair_instances

TOLERANCE = {"accuracy": 0.005, "rmse": 0.01}  # the score's: absolute, or a share of the RMSE


def broken_findings(scenario: Scenario) -> list[Finding]:
    """The data-quality findings the agent would plan a repair from, one per row fault."""
    out = []
    for fault in scenario.faults:
        if fault.kind not in ("null_burst", "unit_change") or fault.feature is None:
            continue
        evidence: dict[str, Any] = {"check": fault.kind}
        if fault.kind == "unit_change":
            evidence["factor"] = float(fault.factor or 1.0)
        out.append(
            Finding(
                kind=FindingKind.DATA_QUALITY,
                detector="hindsight",
                features=[fault.feature],
                statistic=fault.kind,
                score=1.0,
                threshold=0.5,
                message=fault.kind,
                evidence=evidence,
            )
        )
    return out


def fills(
    data: ScenarioData, faulty: pd.DataFrame, nulled: list[str], order_is_time: bool, seed: int
) -> dict[str, pd.DataFrame]:
    """The faulty rows with the nulls of ``nulled`` filled by each rule."""
    reference = data.holdout[data.features]
    rng = np.random.default_rng(seed)
    out: dict[str, pd.DataFrame] = {}
    for rule in ("median", "mean", "hot_deck", "previous"):
        if rule == "previous" and not order_is_time:
            continue
        frame = faulty.copy()
        for name in nulled:
            column = frame[name]
            missing = column.isna()
            if rule == "median":
                frame.loc[missing, name] = reference[name].median()
            elif rule == "mean":
                frame.loc[missing, name] = reference[name].mean()
            elif rule == "hot_deck":
                pool = reference[name].dropna().to_numpy()
                frame.loc[missing, name] = rng.choice(pool, size=int(missing.sum()))
            else:
                # the last value that arrived (the weather of the hour before), the reference's
                # median before any
                frame[name] = column.ffill().fillna(reference[name].median())
        out[f"repair:{rule}"] = frame
    return out


def score_remedies(name: str, order: str, seed: int = 0, delay: int = 0) -> dict[str, Any]:
    """Each remedy's served metric over the fault periods, in place from ``delay`` windows
    after each fault's first window (doing nothing before)."""
    scenario = load_scenario(name, order=order)  # type: ignore[arg-type]
    data = prepare(scenario, seed)
    features = data.features
    faulty = inject(data.stream, data.reference, scenario.faults, data.target, seed=seed)
    clean_X, faulty_X = data.stream[features], faulty[features]
    truth = faulty[data.target].to_numpy()
    champion = train(scenario.model, data, seed=seed)
    answers: dict[str, np.ndarray] = {"keep": champion.predict(faulty_X)}
    if scenario.fallback is not None:
        answers["fallback"] = train(scenario.fallback, data, seed=seed).predict(faulty_X)
    findings = broken_findings(scenario)
    broken = sorted({n for f in findings for n in f.features})
    if findings:
        categorical = frozenset(
            f.name for f in data.spec.features if f.type.value in ("categorical", "boolean")
        )
        sample = clean_rows(data.holdout[features])
        plan = plan_repair(findings, sample, categorical)
        if plan:
            mended = pd.DataFrame(repair_instances(clean_rows(faulty_X), plan))[features]
            answers["repair:agent"] = champion.predict(mended.astype(faulty_X.dtypes.to_dict()))
    nulled = sorted({f.feature for f in scenario.faults if f.kind == "null_burst" and f.feature})
    for rule, frame in fills(data, faulty_X, nulled, not scenario.shuffle, seed).items():
        answers[rule] = champion.predict(frame)
    if broken:
        kept = [f for f in features if f not in broken]
        narrow = ScenarioData(
            data.spec.model_copy(
                update={"features": [f for f in data.spec.features if f.name in kept]}
            ),
            data.reference,
            data.stream,
            data.target,
            data.task,
        )
        answers["retrain_without"] = train(scenario.model, narrow, seed=seed).predict(faulty[kept])
    size = scenario.window
    late = np.zeros(len(truth), dtype=bool)
    for fault in scenario.faults:
        first = fault.start // size
        late[first * size : (first + delay) * size] = True
    for option, predicted in answers.items():
        if option != "keep":
            predicted[late] = answers["keep"][late]
    answers["oracle"] = champion.predict(clean_X)
    spans = fault_windows(scenario)
    windows = [w for w in range(scenario.windows) if in_fault(w, spans)]
    metric = "rmse" if data.task is Task.REGRESSION else "accuracy"
    served: dict[str, float] = {}
    for option, predicted in answers.items():
        values = [
            metric_of(
                data.task, truth[w * size : (w + 1) * size], predicted[w * size : (w + 1) * size]
            )
            for w in windows
        ]
        served[option] = float(np.mean([v for v in values if v is not None]))
    return {
        "scenario": name,
        "order": order,
        "metric": metric,
        "windows": windows,
        "served": served,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="+")
    parser.add_argument("--order", choices=("shuffled", "time", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--delay",
        type=int,
        default=0,
        help="windows after each fault's first one before a remedy is in place (default 0: "
        "from the fault's first record, the best any timing could do)",
    )
    args = parser.parse_args(argv)
    orders = ("shuffled", "time") if args.order == "both" else (args.order,)
    print(
        f"| scenario | order | remedy (in place {args.delay} windows after the fault began) "
        "| served over the fault periods | minus doing nothing |"
    )
    print("|---|---|---|---|---|")
    for name in args.scenario:
        for order in orders:
            result = score_remedies(name, order, args.seed, args.delay)
            served, metric = result["served"], result["metric"]
            keep = served["keep"]
            for option, value in served.items():
                gain = (keep - value) / keep if metric == "rmse" else value - keep
                mark = (
                    " (helps)"
                    if option not in ("keep", "oracle") and gain > TOLERANCE[metric]
                    else ""
                )
                print(f"| {name} | {order} | {option} | {value:.4f} | {gain:+.4f}{mark} |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
