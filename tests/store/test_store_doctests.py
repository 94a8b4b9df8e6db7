"""The runnable examples in the docstrings of the clock and the store stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["mlwarden.clock", "mlwarden.store.repository"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
