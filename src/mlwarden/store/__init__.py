"""Storage: SQLAlchemy Core tables, Alembic migrations, the ``Store`` gateway, batched writes."""

from mlwarden.store.repository import Store, VersionInfo

__all__ = ["Store", "VersionInfo"]
