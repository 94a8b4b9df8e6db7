"""The dashboard: server-rendered pages for model health, incidents, approvals and the audit log.

The application calls :func:`mount_ui` once; see :mod:`mlwarden.ui.routes`.
"""

from mlwarden.ui.routes import mount_ui

__all__ = ["mount_ui"]
