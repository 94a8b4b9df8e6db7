"""The remedies, one per action kind, each registered by its own module.

A remedy module decorates its ``Remedy`` subclass with ``register``; being in the package is
its registration, since ``registered`` imports every module of ``mlwarden.agent.remedies``
first (as ``detect.registry`` does for detectors). ``remedy_for`` is what the operations
service, verification, the loop and the dashboard ask.

>>> sorted(kind.value for kind in registered()) == sorted(kind.value for kind in ActionKind)
True
>>> remedy_for("fallback").verifies.value, remedy_for(ActionKind.ROLLBACK).replaces_live
('symptom', True)
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TypeVar

from mlwarden.agent.remedies.base import Remedy
from mlwarden.domain import ActionKind
from mlwarden.errors import InvalidInput

_REGISTRY: dict[ActionKind, Remedy] = {}
_REMEDY = TypeVar("_REMEDY", bound=type[Remedy])


def register(cls: _REMEDY) -> _REMEDY:
    """Class decorator: the remedy of ``cls.kind`` (one per kind, with a phrase)."""
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, ActionKind) or not getattr(cls, "phrase", ""):
        raise InvalidInput(f"remedy {cls.__name__} declares no action kind or no phrase")
    known = _REGISTRY.get(kind)
    if known is not None and type(known) is not cls:
        raise InvalidInput(f"two remedies of {kind.value!r}: {type(known)} and {cls}")
    _REGISTRY[kind] = cls()
    return cls


def registered() -> dict[ActionKind, Remedy]:
    """Every registered remedy by its action kind (every module of the package imported)."""
    package = importlib.import_module("mlwarden.agent.remedies")
    for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
        importlib.import_module(f"mlwarden.agent.remedies.{module}")
    return dict(_REGISTRY)


def remedy_for(kind: ActionKind | str) -> Remedy:
    """The remedy of an action kind (its value, as journaled, will do)."""
    found = _REGISTRY.get(ActionKind(kind)) or registered().get(ActionKind(kind))
    if found is None:
        raise InvalidInput(f"no remedy is registered for action kind {kind!r}")
    return found


def replacing_kinds() -> frozenset[str]:
    """The action kinds that put another version in the live one's place."""
    return frozenset(kind.value for kind, remedy in registered().items() if remedy.replaces_live)


def remedial_kinds() -> frozenset[ActionKind]:
    """The action kinds that change how the model serves (held to confidence and budgets)."""
    return frozenset(kind for kind, remedy in registered().items() if remedy.remedial)


def weighed_kinds() -> frozenset[ActionKind]:
    """The action kinds scored on the incident's stored records before they are chosen."""
    return frozenset(kind for kind, remedy in registered().items() if remedy.weighed)


__all__ = [
    "register",
    "registered",
    "remedial_kinds",
    "remedy_for",
    "replacing_kinds",
    "weighed_kinds",
]
