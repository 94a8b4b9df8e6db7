"""The JSON text the store writes for a value (``store.base._dumps``)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mlwarden.store.base import _dumps, _finite_or_none, _plain


def _reference(value: Any) -> str:
    """The text as ``json``'s own encoder writes it, NaN and infinity as null."""
    try:
        return json.JSONEncoder(allow_nan=False).encode(value)
    except ValueError:
        return json.dumps(_finite_or_none(value))
    except TypeError:
        return json.dumps(_finite_or_none(_plain(value)))


def test_every_kind_of_value_reads_back_as_the_json_module_would_write_it() -> None:
    values: list[Any] = [
        None,
        True,
        False,
        0,
        -7,
        2**70,
        0.1,
        -0.0,
        1e300,
        float("nan"),
        float("inf"),
        "plain",
        'quote " and \\ and \n',
        "ünïcødé ☃",
        [],
        {},
        [1, "a", None, [2.5, {"x": float("-inf")}]],
        {"age": 22.0, "plan": "b", "missing": None, "nested": {"k": [1, 2]}},
        np.float64(0.3),
        np.int64(4),
        {"proba": np.array([0.25, 0.75]), "n": np.int32(3)},
        (1, 2),
    ]
    for value in values:
        text = _dumps(value)
        # the same value read back, of the same types (orjson spells it more compactly)
        assert json.loads(text) == json.loads(_reference(value)), value
        assert repr(json.loads(text)) == repr(json.loads(_reference(value))), value
    assert json.loads(_dumps({"a": float("nan")})) == {"a": None}
    assert _dumps(-0.0) == "-0.0"  # the sign of a zero is kept
    assert json.loads(_dumps("ünïcødé ☃")) == "ünïcødé ☃"


def test_stored_json_reads_what_orjson_refuses_the_standard_librarys_way() -> None:
    from mlwarden.store.base import _stored_json

    # ``NaN`` as SQLAlchemy once wrote it, an integer beyond 64 bits, a number SQLite returned
    # as a number, and NULL, in one column
    assert _stored_json(['{"a": 1}', None, 3, "[1, 2]"]) == [{"a": 1}, None, 3, [1, 2]]
    decoded = _stored_json(['{"a": NaN}', str(2**70), '"x"'])
    assert decoded[1:] == [2**70, "x"]
    assert np.isnan(decoded[0]["a"])
