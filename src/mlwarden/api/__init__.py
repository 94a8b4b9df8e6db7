"""The HTTP API of mlwarden: ``create_app(settings, store)`` builds the FastAPI server."""

from __future__ import annotations

from mlwarden.api.app import create_app

__all__ = ["create_app"]
