"""Versioned schema migrations (Alembic), applied by ``Store`` when it opens a database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

HERE = Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` pointing at this package, optionally bound to ``connection``."""
    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema of ``engine``'s database up to ``revision`` (default: the newest).

    "heads" rather than "head": layers add their own revisions, and should two of them branch
    from the same parent the database still gets every one of them.
    """
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def current_heads(engine: Engine) -> set[str]:
    """The revisions the database is at (empty for a database Alembic never touched)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def script_heads() -> set[str]:
    """The newest revisions shipped with this package."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config()).get_heads())
