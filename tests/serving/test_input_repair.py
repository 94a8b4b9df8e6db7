"""Input repair: the rules of ``serving.repair`` and the plan ``agent.repair`` makes of findings.
Through the real gateway: tests/api/test_api_input_repair.py."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from mlwarden.agent.repair import plan_repair
from mlwarden.domain import FeatureRepair, Finding, FindingKind
from mlwarden.serving.repair import repair_instances


def broken(feature: str, check: str, **evidence: Any) -> Finding:
    return Finding(
        kind=FindingKind.DATA_QUALITY,
        detector="quality",
        features=[feature],
        statistic="s",
        score=1.0,
        threshold=0.5,
        message=f"{feature}: {check}",
        evidence={"check": check, **evidence},
    )


def test_each_rule_touches_only_the_values_it_names() -> None:
    plan = {
        "price": FeatureRepair(fill=52.0),
        "demand": FeatureRepair(divide_by=100.0, low=0.0, high=1.0),
        "weather": FeatureRepair(known=[1, 2, 3], unseen_to=1),
    }
    rows = [
        {"price": None, "demand": 42.0, "weather": "Smoke"},
        {"price": math.nan, "demand": 0.5, "weather": 2},
        {"price": 3.0, "demand": 250.0, "weather": "3"},  # 2.5 is not plausible: left alone
    ]
    assert repair_instances(rows, plan) == [
        {"price": 52.0, "demand": 0.42, "weather": 1},
        {"price": 52.0, "demand": 0.5, "weather": 2},
        {"price": 3.0, "demand": 250.0, "weather": "3"},  # "3" is the known code 3
    ]
    assert rows[0]["price"] is None  # the caller's requests are not modified


def test_a_renamed_column_is_renamed_back_and_a_null_is_predicted_from_the_others() -> None:
    plan = {
        "vic": FeatureRepair(
            renamed_from="vic_new",
            fill=0.5,
            fill_intercept=0.1,
            fill_coefficients={"nsw": 2.0},
            low=0.0,
            high=1.0,
        )
    }
    assert repair_instances([{"vic_new": 0.3, "nsw": 0.2}], plan) == [{"vic": 0.3, "nsw": 0.2}]
    assert repair_instances([{"vic": None, "nsw": 0.2}], plan) == [{"vic": 0.5, "nsw": 0.2}]
    assert repair_instances([{"nsw": 0.9}], plan) == [{"nsw": 0.9, "vic": 1.0}]  # clipped
    assert repair_instances([{"vic": None, "nsw": None}], plan) == [{"vic": 0.5, "nsw": None}]


@pytest.mark.parametrize(
    "rule",
    [
        {"fill": math.inf},
        {"divide_by": 100.0},  # no plausible range
        {"divide_by": -10.0, "low": 0.0, "high": 1.0},
        {"fill_intercept": math.nan},
        {"shout": 1},
    ],
)
def test_a_repair_rule_that_cannot_be_applied_is_refused(rule: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FeatureRepair.model_validate(rule)


def test_the_plan_follows_each_finding_and_takes_values_from_the_training_sample() -> None:
    sample = [
        {"nsw": i / 100, "vic": 0.1 + 2 * i / 100, "noise": (i * 37) % 11, "sky": "clear"}
        for i in range(100)
    ] + [{"nsw": 0.5, "vic": 1.1, "noise": 3, "sky": "rain"}]
    plan = plan_repair(
        [
            broken("vic", "null_burst"),
            broken("nsw", "unit_change", factor=100.0),
            broken("sky", "unseen_category", unseen={"smoke": 40}),
        ],
        sample,
    )
    assert set(plan) == {"vic", "nsw", "sky"}
    # vic is a straight line of nsw in the sample, but nsw is broken too: noise alone explains
    # nothing, so nulls take the median
    assert plan["vic"].fill_coefficients is None and plan["vic"].fill == pytest.approx(1.1)
    assert plan["nsw"].divide_by == 100.0 and plan["nsw"].low < 0.0 < 1.0 < plan["nsw"].high
    assert plan["sky"].unseen_to == "clear" and set(plan["sky"].known or []) == {"clear", "rain"}

    alone = plan_repair([broken("vic", "null_burst")], sample)["vic"]
    assert alone.fill_coefficients is not None
    assert alone.fill_coefficients["nsw"] == pytest.approx(2.0, abs=0.05)
    assert plan_repair([broken("vic", "constant")], sample) == {}
    assert plan_repair([broken("vic", "null_burst")], None) == {}


def test_a_known_unit_factor_that_is_no_power_of_ten_divides_every_value() -> None:
    """Miles turned into kilometres mostly stay inside the miles' range: the range cannot tell
    which values to divide, so every one is (and only while the fault lasts: such a rule is not
    the identity on clean requests and is released when the inputs are clean again)."""
    sample = [{"distance": float(d)} for d in range(100, 2600, 25)]
    km = plan_repair([broken("distance", "unit_change", factor=1.609344)], sample)["distance"]
    assert km.divide_by == 1.609344 and km.divide_all
    rows = [{"distance": 1609.344}, {"distance": 160.9344}, {"distance": None}]
    assert repair_instances(rows, {"distance": km}) == [
        {"distance": pytest.approx(1000.0)},
        {"distance": pytest.approx(100.0)},
        {"distance": None},
    ]
    hundred = plan_repair([broken("distance", "unit_change", factor=100.0)], sample)["distance"]
    assert not hundred.divide_all  # a power of ten: only values past the range
    assert repair_instances([{"distance": 1000.0}], {"distance": hundred}) == [{"distance": 1000.0}]
    with pytest.raises(ValidationError):
        FeatureRepair(divide_all=True)
