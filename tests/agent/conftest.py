"""Fixtures of the agent tests: a real SQLite store, a deployed real model, a webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from agent_helpers import Receiver, setup_deployed

from empty_sqlite import migrated_sqlite
from mlwarden.datasets import load
from mlwarden.store.repository import Store


@pytest.fixture(scope="session")
def elec() -> pd.DataFrame:
    return load("electricity")


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(migrated_sqlite(tmp_path / "mlwarden.db"))
    yield s
    s.close()


@pytest.fixture()
def deployed(store: Store, elec: pd.DataFrame) -> dict[str, Any]:
    """Model ``elec``: v1 (healthy, fallback) and v2 (healthy, live), both trained on old data."""
    return setup_deployed(store, elec)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
