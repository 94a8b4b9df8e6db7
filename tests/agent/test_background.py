"""The agent as the server runs it: a background thread with the server's settings, purging
raw records past their retention after each pass."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
from agent_helpers import FEATURES, MODEL, setup_deployed

from mlwarden.agent.background import BackgroundAgent
from mlwarden.clock import utcnow
from mlwarden.settings import Settings
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.repository import Store


def _rows(elec: pd.DataFrame, first: int, count: int, version: int, days_ago: float) -> list:
    received = utcnow() - timedelta(days=days_ago)
    return [
        {
            "id": f"b{n:05d}",
            "model": MODEL,
            "version": version,
            # event times of a backfill: a month old whatever their arrival
            "timestamp": received - timedelta(days=30),
            "received_at": received + timedelta(milliseconds=n),
            "features": {f: float(elec.iloc[3000 + n][f]) for f in FEATURES},
            "prediction": int(elec.iloc[3000 + n]["target"]),
        }
        for n in range(first, first + count)
    ]


def test_the_server_agent_uses_the_server_settings_and_purges_by_arrival(
    store: Store, elec: pd.DataFrame, tmp_path: Path
) -> None:
    deployed = setup_deployed(store, elec)
    store.insert_records(_rows(elec, 0, 120, deployed["v2"], days_ago=10))  # past retention
    store.insert_records(_rows(elec, 120, 150, deployed["v2"], days_ago=1))  # within it
    settings = Settings(
        data_dir=tmp_path,
        window_size=50,
        reference_size=50,
        record_retention_days=7,
        agent_interval_s=0.2,
    )
    passes: list[int] = []
    background = BackgroundAgent(store, settings, on_pass=lambda: passes.append(1)).start()
    try:
        deadline = time.monotonic() + 60
        while store.count_records(MODEL) > 150 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        background.stop()
    # the ten-day-old arrivals are gone, the recent ones stay although their event times
    # are a month old
    assert store.count_records(MODEL) == 150
    assert store.record_ids_present(["b00119", "b00120"]) == {"b00120"}
    # windows of the server's size: the first pass saw 270 records, five full windows of 50
    assert AgentRepo(store).last_window(MODEL) == 4
    assert passes  # the server's warmer of diagnoses is told after each pass
