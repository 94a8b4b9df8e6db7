"""Versioned schema migrations (Alembic), applied by ``Store`` when it opens a database.

Alembic (with Mako and Pygments, about 12 MB of a server's memory) is imported only when the
database is behind: a store already at :data:`HEADS` is recognised with one plain query.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).resolve().parent

# The newest revisions in versions/. A new migration changes this too;
# tests/store/test_store_migrations.py fails until it equals Alembic's own computation.
HEADS: set[str] = {"stale201"}


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` pointing at this package, optionally bound to ``connection``."""
    from alembic.config import Config

    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def stored_revisions(engine: Engine) -> set[str] | None:
    """The rows of ``alembic_version`` read with plain SQL, or None when it cannot be read
    (no such table yet). Alembic's own reading would import Alembic."""
    try:
        with engine.connect() as connection:
            # asked first, so that a new database logs no error for a missing table
            if not inspect(connection).has_table("alembic_version"):
                return None
            rows = connection.execute(text("SELECT version_num FROM alembic_version"))
            return {str(row[0]) for row in rows}
    except SQLAlchemyError:
        return None


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema of ``engine``'s database up to ``revision`` (default: the newest).

    "heads" rather than "head": layers add their own revisions, and should two of them branch
    from the same parent the database still gets every one of them. A database already at
    :data:`HEADS` is left alone without importing Alembic.
    """
    if revision == "heads" and stored_revisions(engine) == HEADS:
        return
    from alembic import command

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
