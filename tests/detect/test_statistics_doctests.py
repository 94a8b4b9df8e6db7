"""The runnable examples in the docstrings of the statistical core and of the agent's judgment
stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "mlwarden.stats.profile",
    "mlwarden.stats.sketch",
    "mlwarden.stats.reference",
    "mlwarden.detect.base",
    "mlwarden.detect.registry",
    "mlwarden.detect.statistics",
    "mlwarden.detect.drift",
    "mlwarden.detect.quality",
    "mlwarden.detect.multivariate",
    "mlwarden.detect.concept",
    "mlwarden.detect.performance_change",
    "mlwarden.stats.performance",
    "mlwarden.monitor.estimate",
    "mlwarden.monitor.engine",
    "mlwarden.agent.incidents",
    "mlwarden.agent.evidence",
    "mlwarden.agent.verify",
    "mlwarden.agent.journal",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
