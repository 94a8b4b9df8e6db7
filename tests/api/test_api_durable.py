"""Durable capture: a server SIGKILLed under load keeps every prediction it answered."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from api_helpers import Load, deploy_elec, wait_for
from sqlalchemy import select

from mlwarden.server.background import ServerProcess
from mlwarden.store import Store
from mlwarden.store import tables as t

DURABLE = {"MLWARDEN_DURABLE_CAPTURE": "1"}


def stored_ids(database: Path) -> set[str]:
    with Store(f"sqlite:///{database}", migrate=False) as store, store.engine.connect() as conn:
        return set(conn.execute(select(t.records.c.id)).scalars())


@pytest.mark.slow
def test_a_durable_server_killed_under_load_keeps_every_answered_prediction(
    tmp_path: Path, elec_artifacts: dict[str, bytes]
) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, env=DURABLE).start()
    load = Load(server.url)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            deploy_elec(client, elec_artifacts)  # type: ignore[arg-type]
            assert client.get("/health").json()["capture"] == "durable"
        threads = load.run(workers=8)
        # the records of the last half second (the flush interval) are still in memory
        assert wait_for(lambda: len(load.answered) >= 400, timeout_s=60)
        server.kill()
        load.stop.set()
        for thread in threads:
            thread.join(60)
    finally:
        server.kill()
    answered = {rid for _, rid in load.answered}
    assert len(answered) >= 400

    with ServerProcess(data, env=DURABLE) as restarted:
        # the capture log the killed server left is replayed as the new one starts
        assert wait_for(lambda: answered <= stored_ids(data / "mlwarden.db"), timeout_s=60)
        records = httpx.get(restarted.url + "/health", timeout=30).json()["records"]
        assert records["spilled_to_journal"] == 0
    assert answered - stored_ids(data / "mlwarden.db") == set()
    assert not list((data / "journal" / "capture").glob("*.jsonl"))  # the clean stop trims it
