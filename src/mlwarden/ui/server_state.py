"""What the dashboard keeps per server (incident diagnoses, assistant histories): made on first
use and kept on the server's :class:`~mlwarden.api.deps.ServerState`, which the API defines
and the dashboard may not add fields to."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["kept_on"]

T = TypeVar("T")
_LOCK = threading.Lock()


def kept_on(state: Any, name: str, make: Callable[[], T]) -> T:
    """``state``'s attribute ``name``, made by ``make`` the first time (once, across threads)."""
    kept: T | None = getattr(state, name, None)
    if kept is None:
        with _LOCK:
            kept = getattr(state, name, None)
            if kept is None:
                kept = make()
                setattr(state, name, kept)
    return kept
