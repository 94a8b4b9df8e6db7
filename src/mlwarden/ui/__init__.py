"""The dashboard: server-rendered pages for model health, incidents, approvals and the audit log.

The application calls :func:`mount_ui` once; see :mod:`mlwarden.ui.routes`. Importing the
package imports none of its modules (the server imports its diagnosis cache at start, its pages
only at the first request under ``/ui``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlwarden.ui.routes import mount_ui

__all__ = ["mount_ui"]


def __getattr__(name: str) -> Any:
    if name == "mount_ui":
        from mlwarden.ui.routes import mount_ui

        return mount_ui
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
