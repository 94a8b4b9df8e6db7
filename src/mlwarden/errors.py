"""Errors that carry a clear reason to the user; the API maps each family to one HTTP status."""

from __future__ import annotations

from typing import Any


class MlwardenError(Exception):
    """Base of every error mlwarden raises on purpose. ``detail`` is safe to show a user."""

    status_code = 400

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidInput(MlwardenError):
    """The caller sent something malformed or out of contract (HTTP 422)."""

    status_code = 422


class NotFound(MlwardenError):
    """A model, version, record, incident … that does not exist (HTTP 404)."""

    status_code = 404


class Conflict(MlwardenError):
    """The request clashes with the current state, e.g. a model that already exists (HTTP 409)."""

    status_code = 409


class Forbidden(MlwardenError):
    """The caller's role does not allow this (HTTP 403)."""

    status_code = 403


class InvalidArtifact(InvalidInput):
    """A model file that is not a valid skops file, or holds types we refuse to load."""


class ServiceUnavailable(MlwardenError):
    """The model is disabled, or a dependency (database, remote endpoint) is down (HTTP 503)."""

    status_code = 503
