"""Schema validation rules, remote payloads/answers in both protocols, canary hashing."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from mlwarden.capture.validation import SchemaValidator, check_batch, parse_json, validate_batch
from mlwarden.domain import FeatureSpec, ModelSpec
from mlwarden.errors import InvalidInput
from mlwarden.serving.gateway import canary_share
from mlwarden.serving.predictors import LocalPredictor, PredictionError, RemotePredictor

SPEC = ModelSpec(
    name="m",
    task="classification",
    features=[
        FeatureSpec(name="amount", type="numeric", minimum=0, maximum=100),
        FeatureSpec(name="items", type="integer", nullable=False),
        FeatureSpec(name="country", type="categorical", categories=["FR", "DE", "1"]),
        FeatureSpec(name="member", type="boolean"),
    ],
)
GOOD = {"amount": 5.0, "items": 2, "country": "FR", "member": True}


def _fields(instance: dict[str, object], strict: bool = False) -> list[tuple[str, str]]:
    validator = SchemaValidator(SPEC, strict=strict)
    return [(e.field, e.expected) for e in validator.errors(instance)]


def test_valid_values_including_lenient_forms() -> None:
    assert _fields(GOOD) == []
    lenient = {"amount": "7.5", "items": 3.0, "country": 1, "member": "false"}
    assert _fields(lenient) == []  # numeric text, whole float, a number naming a category
    assert _fields({**GOOD, "amount": None}) == []  # nullable
    assert _fields({**GOOD, "amount": math.nan}) == []  # NaN from a DataFrame is a null


def test_each_rule() -> None:
    assert _fields({**GOOD, "amount": "abc"}) == [("amount", "a number")]
    assert _fields({**GOOD, "amount": math.inf})[0][1].startswith("a finite number")
    assert _fields({**GOOD, "items": 2.5}) == [("items", "an integer")]
    assert _fields({**GOOD, "items": None}) == [("items", "a value (not null)")]
    assert _fields({**GOOD, "country": 7})[0][0] == "country"
    assert _fields({**GOOD, "country": {"a": 1}}) == [("country", "a category (string)")]
    assert _fields({**GOOD, "member": "maybe"})[0][0] == "member"
    missing = {k: v for k, v in GOOD.items() if k != "items"}
    assert _fields(missing) == [("items", "present")]
    assert _fields({**GOOD, "extra": 1}) == [("extra", "no such feature")]


def test_range_and_unknown_category_are_errors_only_when_strict() -> None:
    drifted = {**GOOD, "amount": 1e6, "country": "JP"}
    assert _fields(drifted) == []
    assert [f for f, _ in _fields(drifted, strict=True)] == ["amount", "country"]


def test_batch_errors_name_rows_and_check_batch_raises() -> None:
    batch = [GOOD, {**GOOD, "amount": "x"}, GOOD, "not a row"]
    errors = validate_batch(SPEC, batch)
    assert [(e.row, e.field) for e in errors] == [(1, "amount"), (3, "")]
    with pytest.raises(InvalidInput) as raised:
        check_batch(SchemaValidator(SPEC), batch)
    assert raised.value.detail["bad_rows"] == [1, 3]
    assert "2 of 4 rows" in raised.value.message


@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**9), 10**9))
def test_any_finite_number_passes(amount: float, items: int) -> None:
    assert _fields({**GOOD, "amount": amount, "items": items}) == []


NUMBERS = ModelSpec(
    name="n",
    task="regression",
    features=[
        FeatureSpec(name="x", type="numeric"),
        FeatureSpec(name="n", type="integer"),
        FeatureSpec(name="y", type="numeric", nullable=False),
    ],
)
_VALUES = st.one_of(
    st.floats(),  # NaN and infinities included
    st.integers(-(2**1030), 2**1030),
    st.booleans(),
    st.none(),
    st.sampled_from(["1.5", " 2 ", "nan", "inf", "x", "", np.float64(3.5), np.int64(4), [1]]),
)


@given(
    st.lists(
        st.dictionaries(st.sampled_from(["x", "n", "y", "z"]), _VALUES, max_size=4),
        min_size=1,
        max_size=3,
    )
)
def test_a_batch_of_numbers_gets_the_errors_of_the_full_checks(rows: list[dict[str, Any]]) -> None:
    """The quick pass for schemas of plain numbers accepts only what the full checks accept:
    any batch gets exactly the errors its rows get one by one."""
    validator = SchemaValidator(NUMBERS)
    one_by_one = [e for row, instance in enumerate(rows) for e in validator.errors(instance, row)]
    assert validator.batch_errors(rows) == one_by_one


def test_parse_json_refuses_nan_and_reports_position() -> None:
    assert parse_json(b'{"a": 1}') == {"a": 1}
    for literal in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(InvalidInput, match=literal):
            parse_json(f'{{"a": {literal}}}')
    with pytest.raises(InvalidInput, match="line 1 column 7"):
        parse_json(b'{"a": }')


def test_local_predictor_column_order_follows_the_fitted_names() -> None:
    import pandas as pd

    frame = pd.DataFrame({"b": [0.0, 1.0, 0.0, 1.0], "a": [5.0, 5.0, -5.0, -5.0]})
    model = LogisticRegression().fit(frame, [1, 1, 0, 0])
    spec = ModelSpec(
        name="m", task="classification", features=[FeatureSpec(name="a"), FeatureSpec(name="b")]
    )
    predictor = LocalPredictor(model, spec)
    assert predictor.columns == ["b", "a"]
    [answer] = predictor.predict([{"a": 5.0, "b": 0.0}])
    assert answer.prediction == 1
    expected = model.predict_proba(pd.DataFrame({"b": [0.0], "a": [5.0]}))[0]
    assert answer.probabilities == pytest.approx({"0": expected[0], "1": expected[1]})
    narrow = ModelSpec(name="m", task="classification", features=[FeatureSpec(name="a")])
    with pytest.raises(InvalidInput, match="does not declare"):
        LocalPredictor(model, narrow)


def test_remote_payloads_and_answers() -> None:
    generic = RemotePredictor({"url": "http://127.0.0.1:1/predict"}, SPEC)
    assert generic.payload([GOOD]) == {"instances": [GOOD]}
    answers = generic.parse({"predictions": [0.7, {"label": "a", "scores": {"a": 0.9}}]}, 2)
    assert answers[0].prediction == 0.7 and answers[0].score == 0.7
    assert answers[1].prediction == "a" and answers[1].probabilities == {"a": 0.9}
    with pytest.raises(PredictionError, match="1 predictions for 2"):
        generic.parse({"predictions": [1]}, 2)
    with pytest.raises(PredictionError, match="'predictions'"):
        generic.parse({"outputs": []}, 1)

    v2 = RemotePredictor({"url": "http://127.0.0.1:1", "protocol": "kserve"}, SPEC)
    assert v2.url == "http://127.0.0.1:1/v2/models/m/infer"
    payload = v2.payload([GOOD, GOOD])
    assert [(i["name"], i["datatype"], i["shape"]) for i in payload["inputs"]] == [
        ("amount", "FP64", [2]),
        ("items", "INT64", [2]),
        ("country", "BYTES", [2]),
        ("member", "BOOL", [2]),
    ]
    json.dumps(payload)
    only_proba = v2.parse(
        {"outputs": [{"name": "probabilities", "shape": [1, 2], "data": [0.1, 0.9]}]}, 1
    )
    assert only_proba[0].prediction == 1 and only_proba[0].probabilities == {"0": 0.1, "1": 0.9}


def test_remote_answers_of_the_common_shapes_and_a_field_mapping() -> None:
    generic = RemotePredictor({"url": "http://127.0.0.1:1/predict"}, SPEC)

    def read(body: Any, count: int = 1) -> list[tuple[Any, Any, Any]]:
        return [(a.prediction, a.probabilities, a.score) for a in generic.parse(body, count)]

    # one object for one instance, its confidence under any of the usual names
    assert read({"prediction": "yes", "confidence": 0.93}) == [("yes", None, 0.93)]
    assert read({"label": 1, "probability": 0.6}) == [(1, None, 0.6)]
    # a bare list, one answer per instance (TorchServe, BentoML), and MLflow / KServe v1
    assert read(["cat", "dog"], 2) == [("cat", None, None), ("dog", None, None)]
    assert read([[0.2, 0.8]]) == [(1, {"0": 0.2, "1": 0.8}, None)]
    assert read({"predictions": [3.5]}) == [(3.5, None, 3.5)]
    # Hugging Face: the top class per input, or every class's score
    assert read([{"label": "POS", "score": 0.9}]) == [("POS", None, 0.9)]
    every = [{"label": "NEG", "score": 0.1}, {"label": "POS", "score": 0.9}]
    assert read(every) == [("POS", {"NEG": 0.1, "POS": 0.9}, None)]
    assert read([every, every], 2) == [("POS", {"NEG": 0.1, "POS": 0.9}, None)] * 2
    # a shape it does not know: the error names its keys and how to map them
    with pytest.raises(
        PredictionError, match=r"without a 'predictions' list \(its keys: 'data'\)"
    ) as err:
        read({"data": {"out": [{"cls": 1, "p": {"v": 0.7}}]}})
    assert "response field mapping" in err.value.detail["hint"]
    mapped = RemotePredictor(
        {
            "url": "http://127.0.0.1:1/predict",
            "response": {"predictions": "data.out", "prediction": "cls", "confidence": "p.v"},
        },
        SPEC,
    )
    answers = mapped.parse({"data": {"out": [{"cls": 1, "p": {"v": 0.7}}] * 2}}, 2)
    assert [(a.prediction, a.score) for a in answers] == [(1, 0.7), (1, 0.7)]
    with pytest.raises(PredictionError, match=r"at 'data\.out'"):
        mapped.parse({"data": {}}, 1)
    with pytest.raises(InvalidInput, match="unknown response field 'label'"):
        RemotePredictor({"url": "http://127.0.0.1:1/p", "response": {"label": "x"}}, SPEC)


def test_remote_call_to_a_closed_port_is_a_prediction_error() -> None:
    from mlwarden.server.background import free_port

    predictor = RemotePredictor({"url": f"http://127.0.0.1:{free_port()}/p"}, SPEC, timeout_s=2.0)
    with pytest.raises(PredictionError, match="failed"):
        predictor.predict([GOOD])
    predictor.close()


def test_canary_share_is_stable_and_spread() -> None:
    shares = np.array([canary_share(f"user-{i}") for i in range(4000)])
    assert canary_share("user-1") == canary_share("user-1")
    assert 0.27 < (shares < 0.3).mean() < 0.33
