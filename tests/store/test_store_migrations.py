"""Schema migrations carry existing data: a database at an older revision, opened now."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, text

from mlwarden.domain import FeatureSpec, ModelSpec, Task
from mlwarden.store import Store
from mlwarden.store import tables as t
from mlwarden.store.migrations import HEADS, current_heads, script_heads, stored_revisions, upgrade

SPEC = ModelSpec(name="a", task=Task.REGRESSION, features=[FeatureSpec(name="x")])
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no migration has touched yet (the shared test database is already at head)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    admin_url: str = request.getfixturevalue("pg_admin_url")
    name = f"mlw_test_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_records_keyed_per_model_keep_the_data_of_revision_0004(blank_url: str) -> None:
    old = Store(blank_url, migrate=False)
    upgrade(old.engine, "agent02")  # migration 0004, before ids were per model
    old.create_model(SPEC)
    old.create_model(SPEC.model_copy(update={"name": "b"}))
    a, b = old.model_id("a"), old.model_id("b")
    with old.engine.begin() as conn:  # as a server of that time stored them
        conn.execute(
            insert(t.records),
            [
                {
                    "id": f"{model}{i}",
                    "model_id": model_id,
                    "version": 1,
                    "ts": T0 + timedelta(seconds=i),
                    "received_at": T0,
                    "features": {"x": float(i)},
                    "prediction": i,
                    "served_by": "external",
                }
                for model, model_id in (("a", a), ("b", b))
                for i in range(3)
            ],
        )
        conn.execute(
            insert(t.feedback),
            [{"record_id": "a1", "model_id": a, "label": 10, "ts": T0}],
        )
    old.close()

    store = Store(blank_url)
    try:
        assert current_heads(store.engine) == script_heads()
        assert [(r["id"], r["prediction"], r["label"]) for r in store.fetch_records("a")] == [
            ("a0", 0, None),
            ("a1", 1, 10),
            ("a2", 2, None),
        ]
        assert store.count_records("b") == 3 and store.count_feedback("a") == 1
        # what the migration is for: b may now use a's ids, and label them
        assert store.insert_records([{"id": "a1", "model": "b", "features": {"x": 9.0}}]) == 1
        assert store.insert_records([{"id": "a1", "model": "a", "features": {"x": 9.0}}]) == 0
        assert store.add_feedback("b", [("a1", 20)]) == (1, [])
        assert next(r for r in store.fetch_records("a") if r["id"] == "a1")["label"] == 10
        assert next(r for r in store.fetch_records("b") if r["id"] == "a1")["label"] == 20
    finally:
        store.close()


def test_the_heads_known_to_the_code_are_alembics_heads() -> None:
    """``HEADS`` lets a store at the newest revision open without importing Alembic; a new
    migration must move it too, or a database would stay behind the code."""
    assert script_heads() == HEADS


def test_a_store_behind_the_heads_is_still_migrated(blank_url: str) -> None:
    old = Store(blank_url, migrate=False)
    assert stored_revisions(old.engine) is None  # no alembic_version table yet
    upgrade(old.engine, "investigate01")
    assert stored_revisions(old.engine) == {"investigate01"} != HEADS
    old.close()
    store = Store(blank_url)
    try:
        assert current_heads(store.engine) == HEADS == stored_revisions(store.engine)
    finally:
        store.close()
