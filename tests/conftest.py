"""Fixtures shared by every test suite.

- ``database_url``: a fresh, migrated, empty database per test, parametrized over SQLite (a file
  in ``tmp_path``) and PostgreSQL (one database per test session on the server of
  ``$MLWARDEN_TEST_PG``, by default 127.0.0.1:5432, reached as ``postgres`` without a password
  through its database ``test``; ``scripts/test-services.sh`` makes one ready and names it),
  created with a random name, emptied between tests and dropped at the end). PostgreSQL cases carry
  the ``postgres`` marker, so ``-m "not postgres"`` runs SQLite only. A SQLite case is a copy of
  a file migrated once per process (``empty_sqlite``), as is ``sqlite_store``'s.
- ``store``: a ``Store`` opened on ``database_url`` and closed after the test.
- ``sqlite_store``: a ``Store`` on a SQLite file only, for tests that need just one backend.
- ``pg_url``: this session's PostgreSQL database, emptied, for PostgreSQL-only tests.
- ``pg_admin_url`` / ``pg_database``: the PostgreSQL server and this session's own database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.nodeid import NodeId
from sqlalchemy import create_engine, inspect, text

from empty_sqlite import migrated_sqlite
from mlwarden.settings import cores
from mlwarden.store import Store

# The agent closes windows in the agent's own process unless a test asks for worker processes
# (tests/agent/test_workers.py): each agent of the suite would otherwise start a worker per
# core, seconds of start-up and a few hundred MB each, for fleets of one model.
os.environ.setdefault("MLWARDEN_AGENT_WORKERS", "1")

PG_SERVER = os.environ.get("MLWARDEN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (``make test``) starts one worker more than this process may use cores: most
    of the suite's time is spent waiting on servers, browsers, subprocesses and probes, and with
    one worker a core the suite kept 1.3-1.4 of 2 cores busy (docs/benchmarks.md). The environment's
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set (read by xdist's own hook)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return cores() + 1


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep each ``xdist_group`` on one worker under ``--dist loadgroup`` (``make test``).

    pytest-xdist tells the scheduler a test's group by appending ``@group`` to its nodeid, but
    3.8 writes ``item._nodeid``, which pytest 9 no longer reads (the nodeid is ``item._id``):
    every group was split over the workers, each worker building the group's module fixtures
    again. The same suffix, set where pytest 9 keeps the nodeid; only in xdist's workers of a
    loadgroup run (where xdist sets ``loadgroup``), and not twice once xdist sets it itself."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = {
            str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")
        }
        if names and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(names))}")
    _long_modules_first(items)


def _long_modules_first(items: list[pytest.Item]) -> None:
    """Hand the workers the modules that hold a ``slow`` test or an ``xdist_group`` first (in
    their order, each module's tests together, so module fixtures are built once), the rest
    after: xdist gives out tests in collection order, and tests/ui's browser walks, collected
    last, ran at the end on one worker while the other had nothing left."""
    long_modules = {
        item.path
        for item in items
        if item.get_closest_marker("slow") or item.get_closest_marker("xdist_group")
    }
    items.sort(key=lambda item: item.path not in long_modules)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """URL of the maintenance database ``test`` on the shared PostgreSQL server."""
    return f"{PG_SERVER}/test"


@pytest.fixture(scope="session")
def pg_database(pg_admin_url: str) -> Iterator[str]:
    """URL of a PostgreSQL database owned by this test session, migrated once, dropped after."""
    name = f"mlw_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{PG_SERVER}/{name}"
    Store(url).close()  # migrate once; tests then only empty the tables
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty_postgres(url: str) -> None:
    """Empty every table (the schema of every layer, not only ours) but Alembic's own."""
    engine = create_engine(url)
    names = [n for n in inspect(engine).get_table_names() if n != "alembic_version"]
    if names:
        with engine.begin() as conn:
            quoted = ", ".join(f'"{name}"' for name in names)
            conn.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """This session's PostgreSQL database, emptied for one test (PostgreSQL-only tests)."""
    _empty_postgres(pg_database)
    return pg_database


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database for one test, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return migrated_sqlite(tmp_path / "mlwarden.db")
    url: str = request.getfixturevalue("pg_database")
    _empty_postgres(url)
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated, empty ``Store`` (SQLite and PostgreSQL)."""
    opened = Store(database_url)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty ``Store`` on a SQLite file."""
    opened = Store(migrated_sqlite(tmp_path / "mlwarden.db"))
    yield opened
    opened.close()
