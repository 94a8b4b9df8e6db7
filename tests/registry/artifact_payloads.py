"""Hostile model files, built the way an attacker would (skops.io.dumps, or by editing the
saved schema and arrays), each one writing ``canary`` if its code ever ran."""

from __future__ import annotations

import builtins
import functools
import io
import json
import operator
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

X = np.array([[0.0], [1.0], [2.0], [3.0]])
Y = [0, 0, 1, 1]


def code_for(canary: Path) -> str:
    return f"open({str(canary)!r}, 'w').write('the code ran')"


def _serving(*steps: Any) -> Pipeline:
    """A pipeline with a real classifier last, so it passes as a model with ``predict``."""
    named = [(f"step{i}", step) for i, step in enumerate(steps)]
    return Pipeline([*named, ("model", LogisticRegression().fit(X, Y))])


def payloads(canary: Path) -> dict[str, tuple[bytes, set[str]]]:
    """name -> (skops bytes, the type names the refusal must give)."""
    code = code_for(canary)
    built: dict[str, tuple[Any, set[str]]] = {
        # the reported attack: fill the input with code, then exec each cell
        "full_like+vectorize(exec)": (
            _serving(
                FunctionTransformer(np.full_like, kw_args={"fill_value": code, "dtype": object}),
                FunctionTransformer(np.vectorize(builtins.exec, otypes=[object])),
            ),
            {"numpy.full_like", "numpy.vectorize", "builtins.exec"},
        ),
        "eval": (
            _serving(
                FunctionTransformer(np.full_like, kw_args={"fill_value": code, "dtype": object}),
                FunctionTransformer(np.vectorize(builtins.eval, otypes=[object])),
            ),
            {"builtins.eval"},
        ),
        "eval as func": (_serving(FunctionTransformer(builtins.eval)), {"builtins.eval"}),
        "partial(exec)": (
            _serving(FunctionTransformer(functools.partial(builtins.exec, code))),
            {"functools.partial", "builtins.exec"},
        ),
        "methodcaller": (
            _serving(FunctionTransformer(operator.methodcaller("__call__"))),
            {"operator.methodcaller"},
        ),
        "frompyfunc(exec)": (
            _serving(FunctionTransformer(np.frompyfunc(builtins.exec, 1, 1))),
            {"exec (vectorized)"},
        ),
        "frompyfunc as func": (
            _serving(FunctionTransformer(np.frompyfunc, kw_args={"nin": 1, "nout": 1})),
            {"numpy.frompyfunc"},
        ),
        "bound method": (
            _serving(FunctionTransformer(LogisticRegression().fit(X, Y).predict)),
            {"predict"},
        ),
    }
    made = {name: (sio.dumps(model), expected) for name, (model, expected) in built.items()}
    # exec as the key type of a dict: skops calls key_type(key) while loading
    made["dict key type exec"] = (
        _edit_schema(sio.dumps({code: 1}), _key_type_to_exec),
        {"builtins.exec"},
    )
    # a protocol-0 function node imports what its content names, not its own type name
    made["protocol 0 function"] = (
        _edit_schema(sio.dumps(FunctionTransformer(np.log1p)), _protocol_0_exec),
        {"builtins.exec"},
    )
    return made


def _protocol_0_exec(schema: dict[str, Any]) -> None:
    schema["protocol"] = 0
    func = schema["content"]["content"]["func"]
    func["content"] = {"module_path": "builtins", "function": "exec"}


def _key_type_to_exec(schema: dict[str, Any]) -> None:
    key_type = schema["key_types"]["content"][0]
    key_type["__module__"], key_type["__class__"] = "builtins", "exec"


def _edit_schema(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    return rewrite(data, {"schema.json": lambda raw: _edited_json(raw, edit)})


def _edited_json(raw: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    schema = json.loads(raw)
    edit(schema)
    return json.dumps(schema).encode()


def rewrite(data: bytes, members: dict[str, Callable[[bytes], bytes]]) -> bytes:
    """A copy of a skops zip with some members transformed."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            raw = src.read(info.filename)
            dst.writestr(info.filename, members.get(info.filename, lambda b: b)(raw))
    return out.getvalue()


def edit_array(data: bytes, file: str, edit: Callable[[np.ndarray], None]) -> bytes:
    """A copy of a skops zip with one of its .npy arrays edited in place."""

    def change(raw: bytes) -> bytes:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
        edit(array)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue()

    return rewrite(data, {file: change})


def array_files(data: bytes, loader: str, key: str) -> list[str]:
    """The .npy files holding ``key`` of every ``loader`` node's state (say the ``nodes`` of
    each TreeNode)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: list[str] = []
    stack: list[Any] = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            content = item.get("content")
            state = content.get("content") if isinstance(content, dict) else None
            if item.get("__loader__") == loader and isinstance(state, dict) and key in state:
                found.append(state[key]["file"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
