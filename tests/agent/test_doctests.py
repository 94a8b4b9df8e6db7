"""The runnable examples in the docstrings of the agent's judgment stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "mlwarden.agent.incidents",
    "mlwarden.agent.evidence",
    "mlwarden.agent.verify",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
