"""A module imported on first use: ``pl = lazy_module("polars")``.

The server imports every route module at start, and several of them reach modules that use
Polars (bulk capture, profiles, window chunks). Imported eagerly, Polars alone held about 25 MB
of every gateway-only server (``mlwarden serve --no-agent``) that never parsed a Parquet file
or profiled a window. Modules that need it for work, not for serving, bind the name to this
proxy; the first attribute read imports the real module (type checkers see the real one
through ``if TYPE_CHECKING``).
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any

__all__ = ["lazy_module"]


class _LazyModule:
    __slots__ = ("_lock", "_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None
        self._lock = threading.Lock()

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            with self._lock:
                if self._module is None:
                    self._module = importlib.import_module(self._name)
                module = self._module
        return getattr(module, attribute)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """A stand-in for ``import name`` that imports it when an attribute is first read.

    >>> json = lazy_module("json")
    >>> json.dumps([1])
    '[1]'
    """
    return _LazyModule(name)
