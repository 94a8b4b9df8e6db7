"""The composition root: ``create_app(settings, store)`` builds the FastAPI server from the API's
routers and the dashboard, and ``background`` runs it in a thread or a child process."""

from __future__ import annotations

from mlwarden.server.app import create_app

__all__ = ["create_app"]
