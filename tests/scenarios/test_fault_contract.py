"""Every registered fault kind on the same clean stream, request and answers (issue 14): each
changes what its declared effects say, inside its period only, and nothing else; it is
deterministic for a seed, and refuses a scenario that leaves out a parameter it needs. A new
kind is checked here unedited, once it has an example in ``EXAMPLES``."""

from __future__ import annotations

import random
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mlwarden.datasets import load
from mlwarden.scenarios.faults import Effect, InjectedFault, Serving, Unattended, build, kinds
from mlwarden.scenarios.spec import Fault
from mlwarden.serving.predictors import Prediction, PredictionError

START, END = 50, 150  # the period of every fault, on a stream of 200 rows
TARGET = "Survived"
EXAMPLES: dict[str, dict[str, Any]] = {
    "arrival_delay": {"delay_s": 600},
    "bad_deploy": {},
    "category_new": {"feature": "Embarked", "value": "Z", "rate": 0.5},
    "concept_change": {"feature": "Fare", "region": "above"},
    "covariate_shift": {"feature": "Fare", "shift": 1.0},
    "errors": {"rate": 1.0},
    "label_shift": {"positive_share": 0.9},
    "latency": {"add_ms": 250},
    "null_burst": {"feature": "Fare", "rate": 0.5},
    "prediction_freeze": {},
    "schema_break": {"feature": "Sex", "mode": "rename", "new_name": "gender"},
    "traffic_surge": {"multiplier": 3},
    "unit_change": {"feature": "Fare", "factor": 100},
}


def _fault(kind: str) -> InjectedFault:
    spec = Fault(kind=kind, start=START, end=END, **EXAMPLES[kind])
    return build([spec])[0]


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    frame = load("titanic").drop(columns=["PassengerId", "Name", "Ticket", "Cabin"])
    frame["Embarked"] = frame["Embarked"].astype(object)
    return frame.iloc[:200].reset_index(drop=True)


def _answers(count: int) -> list[Prediction]:
    return [
        Prediction(i % 2, {"0": 0.8 - 0.6 * (i % 2), "1": 0.2 + 0.6 * (i % 2)})
        for i in range(count)
    ]


def test_every_registered_kind_has_an_example_and_a_description() -> None:
    assert sorted(EXAMPLES) == kinds()
    for fault in build([Fault(kind=k, start=0, **EXAMPLES[k]) for k in kinds()]):
        module = sys.modules[type(fault).__module__]
        assert fault.effects and set(fault.effects) <= set(Effect)
        assert module.__name__ == f"mlwarden.scenarios.faults.{fault.kind}"  # a module a kind
        assert module.__doc__ and module.__doc__.startswith(f"{fault.kind}: ")


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_a_scenario_without_a_needed_parameter_is_refused(kind: str) -> None:
    fault = _fault(kind)
    for name in fault.needs:
        params = {k: v for k, v in EXAMPLES[kind].items() if k != name}
        with pytest.raises(ValidationError, match=name):
            Fault(kind=kind, start=0, **params)


def test_an_unknown_kind_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"unknown fault kind 'tsunami'.*null_burst"):
        Fault(kind="tsunami", start=0)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_its_period(kind: str) -> None:
    fault = _fault(kind)
    assert [fault.active(p) for p in (START - 1, START, END - 1, END)] == [
        False,
        True,
        True,
        False,
    ]
    mask = fault.mask(200)
    assert mask.sum() == END - START and mask[START] and not mask[END]


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_rows_and_labels_change_as_declared_inside_the_period_only(
    kind: str, clean: pd.DataFrame
) -> None:
    fault = _fault(kind)
    features = [c for c in clean.columns if c != TARGET]

    def run(seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return fault.rows(clean.copy(), clean, fault.mask(len(clean)), TARGET, rng)

    out = run(0)
    pd.testing.assert_frame_equal(run(0), out)  # the same seed, the same stream
    outside = np.r_[0:START, END : len(clean)]
    inside = np.r_[START:END]
    pd.testing.assert_frame_equal(
        out.iloc[outside].astype(object), clean.iloc[outside].astype(object)
    )

    def changed(columns: list[str]) -> bool:
        a = out.iloc[inside][columns].astype(object).where(out.iloc[inside][columns].notna())
        b = clean.iloc[inside][columns].astype(object).where(clean.iloc[inside][columns].notna())
        return not a.equals(b)

    assert changed(features) == (Effect.ROWS in fault.effects)
    assert changed([TARGET]) == (Effect.LABELS in fault.effects)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_requests_change_as_declared(kind: str, clean: pd.DataFrame) -> None:
    fault = _fault(kind)
    instance = {k: v for k, v in clean.iloc[START].items() if k != TARGET}
    sent = fault.request(dict(instance), lambda: 0.0)
    assert (sent != instance) == (Effect.REQUESTS in fault.effects)
    assert fault.request(dict(instance), lambda: 0.999) == instance  # a draw above its rate


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_answers_change_as_declared(kind: str) -> None:
    fault = _fault(kind)
    healthy = _answers(10)
    serving = Serving(seed=0, majority=0)
    try:
        served = fault.serve(START, lambda: _answers(10), serving)
    except PredictionError:
        served = None
        failed = True
    else:
        failed = False
    assert (failed or (served is not None and served != healthy)) == (
        Effect.ANSWERS in fault.effects
    )
    # the doing-nothing answers: changed inside the period only, and only by serving faults
    inputs = pd.DataFrame({"x": np.arange(200.0)})
    answers = np.array([i % 2 for i in range(200)], dtype=object)
    before = answers.copy()

    class Constant:
        def __init__(self, value: int) -> None:
            self.value = value

        def predict(self, rows: pd.DataFrame) -> np.ndarray:
            return np.full(len(rows), self.value)

    run = Unattended(inputs, 10, serving, bad=Constant(7), fallback=Constant(8))
    fault.unattended(answers, fault.mask(200), run)
    assert list(answers[:START]) == list(before[:START])
    assert list(answers[END:]) == list(before[END:])
    moved = list(answers[START:END]) != list(before[START:END])
    assert moved == bool(fault.effects & {Effect.ANSWERS, Effect.RELEASE})


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_latency_arrival_rate_and_release_as_declared(kind: str) -> None:
    fault = _fault(kind)
    assert (fault.added_latency_ms(random.Random(0)) > 0) == (Effect.LATENCY in fault.effects)
    assert (fault.arrival_delay_s() > 0) == (Effect.ARRIVAL in fault.effects)
    assert (fault.rate_factor() != 1.0) == (Effect.RATE in fault.effects)
    releases = [fault.releases_at(p, 10) for p in (START - 10, START, START + 10)]
    assert releases == ([False, True, False] if Effect.RELEASE in fault.effects else [False] * 3)
    assert fault.needs_bad_version == (Effect.RELEASE in fault.effects)
