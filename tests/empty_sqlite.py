"""A migrated, empty SQLite database for a test: a copy of one file migrated once per process.

Migrating a new SQLite file runs every Alembic revision, about a second; hundreds of tests start
from an empty database, so each gets a byte-for-byte copy of the same migrated file instead (the
page size and WAL mode of ``make_engine`` are in the file and come along). The migrations
themselves are tested from nothing in tests/store/test_store_migrations.py, and tests about what
a new data directory gets still start from nothing.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from mlwarden.store import Store

_template: Path | None = None


def _migrated_template() -> Path:
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="mlwarden-empty-sqlite-"))
        atexit.register(shutil.rmtree, folder, True)
        path = folder / "empty.db"
        Store(f"sqlite:///{path}").close()
        # the last connection's close checkpoints the WAL into the file and removes it
        assert sorted(p.name for p in folder.iterdir()) == ["empty.db"]
        _template = path
    return _template


def migrated_sqlite(path: Path) -> str:
    """The URL of a new SQLite file at ``path`` holding the migrated, empty schema."""
    if path.exists():
        raise FileExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_template(), path)
    return f"sqlite:///{path}"
