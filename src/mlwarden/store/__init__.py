"""Storage: SQLAlchemy Core tables, Alembic migrations, the ``Store`` gateway, batched writes."""

from mlwarden.store.repository import Store, VersionInfo, as_utc, utcnow

__all__ = ["Store", "VersionInfo", "as_utc", "utcnow"]
