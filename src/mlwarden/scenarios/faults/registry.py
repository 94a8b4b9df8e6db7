"""Fault kinds register themselves here; the scenario spec, the simulator and the demo use
what is registered.

A fault kind is one module of ``scenarios/faults/`` holding an
:class:`~mlwarden.scenarios.faults.base.InjectedFault` subclass decorated with :func:`register`.
Being in the package is its registration: :func:`registered` imports every module of it, as
``detect.registry`` does for detectors. ``tests/scenarios/test_fault_contract.py`` runs every
registered kind on the same clean stream and checks its declared effects.

>>> sorted(kinds())[:3]
['arrival_delay', 'bad_deploy', 'category_new']
>>> fault_class("latency").effects
frozenset({<Effect.LATENCY: 'latency'>})
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import TypeVar

from mlwarden.errors import InvalidInput
from mlwarden.scenarios.faults.base import FaultSpec, InjectedFault

__all__ = ["build", "fault_class", "kinds", "register", "registered"]

_REGISTRY: dict[str, type[InjectedFault]] = {}
_FAULT = TypeVar("_FAULT", bound=type[InjectedFault])
# modules of the package that hold no fault kind
_PLUMBING = {"base", "registry", "inject"}


def register(cls: _FAULT) -> _FAULT:
    """Class decorator: add a fault kind to the registry (its kind must be new)."""
    if not getattr(cls, "effects", None):
        raise InvalidInput(f"fault kind {cls.__name__} declares no effect")
    known = _REGISTRY.get(cls.kind)
    if known is not None and known is not cls:
        raise InvalidInput(f"two fault classes are of kind {cls.kind!r}: {known} and {cls}")
    _REGISTRY[cls.kind] = cls
    return cls


def registered() -> list[type[InjectedFault]]:
    """Every registered fault kind, by kind."""
    package = importlib.import_module("mlwarden.scenarios.faults")
    for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
        if module not in _PLUMBING:
            importlib.import_module(f"mlwarden.scenarios.faults.{module}")
    return [_REGISTRY[kind] for kind in sorted(_REGISTRY)]


def kinds() -> list[str]:
    """The registered kinds, sorted."""
    return [cls.kind for cls in registered()]


def fault_class(kind: str) -> type[InjectedFault]:
    """The class of ``kind``; InvalidInput naming the known kinds when it is not registered."""
    registered()
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise InvalidInput(
            f"unknown fault kind {kind!r}; the kinds are: {', '.join(sorted(_REGISTRY))}"
        )
    return cls


def build(specs: Iterable[FaultSpec]) -> list[InjectedFault]:
    """One fault object per scenario fault, in the scenario's order."""
    return [fault_class(spec.kind)(spec) for spec in specs]
