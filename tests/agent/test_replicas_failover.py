"""Two ``mlwarden serve`` replicas with the agent on one PostgreSQL: the leader is SIGKILLed in
the middle of an incident's action; the other replica takes the lead within the lock timeout,
finishes the journaled action once, and no answered prediction is lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from agent_helpers import FEATURES, MODEL, persistent_windows, setup_deployed, tagged_revisions

from mlwarden.agent.remedies.base import CRASH_ENV
from mlwarden.server.background import ServerProcess
from mlwarden.settings import Settings
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.journal import ActionJournal
from mlwarden.store.repository import Store

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LOCK_TIMEOUT_S = Settings().leader_lock_timeout_s


def agent_role(server: ServerProcess) -> str:
    return str(httpx.get(server.url + "/health", timeout=30).json()["replica"]["agent"])


def until(condition: object, timeout_s: float, what: str) -> float:
    """Seconds until ``condition()`` holds, polled every 20 ms; fails after ``timeout_s``."""
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - start < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(0.02)
    return time.monotonic() - start


class Traffic:
    """A thread per replica sending single predictions of ``elec``, keeping the answered ids."""

    def __init__(self, urls: list[str], row: dict[str, float]) -> None:
        self.answered: list[str] = []
        self.versions: dict[str, list[int]] = {url: [] for url in urls}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send, args=(url, row)) for url in urls]
        for thread in self.threads:
            thread.start()

    def _send(self, url: str, row: dict[str, float]) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    response = client.post(f"/v1/models/{MODEL}/predict", json={"instances": row})
                except httpx.HTTPError:  # this replica was killed
                    return
                if response.status_code == 200:
                    body = response.json()
                    self.answered.append(body["id"])
                    self.versions[url].append(body["version"])
                time.sleep(0.005)

    def end(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


def test_a_replica_takes_over_from_a_killed_leader(
    pg_url: str, tmp_path: Path, elec: pd.DataFrame
) -> None:
    with Store(pg_url) as store:
        deployed = setup_deployed(store, elec)  # v2 live, v1 its fallback
    policy = tmp_path / "policy.yaml"
    policy.write_text("defaults: {approval: {from_severity_actions: []}}")
    env = {
        "MLWARDEN_AGENT_POLICY": str(policy),
        "MLWARDEN_AGENT_INTERVAL_S": "0.3",
        "MLWARDEN_DURABLE_CAPTURE": "1",  # an answered prediction is on disk before its answer
        "MLWARDEN_WINDOW_SIZE": "100000",  # the incident comes from the stored windows only
    }
    # the leader SIGKILLs itself between changing the deployment and journaling it as done:
    # the worst moment, and the same moment on every run
    leader = ServerProcess(
        tmp_path / "a", database_url=pg_url, agent=True, env={**env, CRASH_ENV: "changed"}
    ).start()
    standby = None
    try:
        until(lambda: agent_role(leader) == "leader", 30, "the first replica leads")
        standby = ServerProcess(tmp_path / "b", database_url=pg_url, agent=True, env=env).start()
        assert agent_role(standby) == "standby"
        row = elec.iloc[40000][FEATURES].astype(float).to_dict()
        traffic = Traffic([leader.url, standby.url], row)
        until(lambda: len(traffic.answered) >= 50, 60, "traffic")

        with Store(pg_url) as store:
            persistent_windows(store, "latency")  # an incident the leader acts on at once
            assert leader.process is not None
            until(
                lambda: leader.process.poll() is not None,
                60,  # type: ignore[union-attr]
                "the leader kills itself mid-action",
            )
            died = time.monotonic()
            until(lambda: agent_role(standby) == "leader", LOCK_TIMEOUT_S, "takeover")
            took_over = time.monotonic() - died
            journal = ActionJournal(store)
            until(
                lambda: all(a["state"] == "done" for a in journal.list()) and journal.list(),
                30,
                "the new leader finishes the journal",
            )
            # the deployment the dead leader changed is served by the survivor
            until(lambda: traffic.versions[standby.url][-1] == deployed["v1"], 5, "fallback")
            traffic.end()

            fallbacks = [a for a in journal.list() if a["kind"] == "fallback"]
            assert len(fallbacks) == 1, "the action ran twice"
            (action,) = fallbacks
            assert action["attempts"] == 2  # begun by the dead leader, finished by the new one
            assert tagged_revisions(store, action["id"], "fallback") == 1
            assert store.get_deployment(MODEL).live_version == deployed["v1"]  # type: ignore[union-attr]
            (alert,) = [a for a in journal.list() if a["kind"] == "alert"]
            assert alert["state"] == "done"
            (incident,) = AgentRepo(store).list_incidents()
            assert incident["state"] == "verifying"  # still open, watched by the new leader
        assert took_over < LOCK_TIMEOUT_S

        # the killed replica comes back (systemd's Restart=), hands its capture log to the
        # database and stands by
        leader.env.pop(CRASH_ENV)
        leader.start()
        assert agent_role(leader) == "standby"
        answered = set(traffic.answered)
        with Store(pg_url) as store:
            until(lambda: len(answered - stored_ids(store)) == 0, 30, "every answered record")
    finally:
        leader.kill()
        if standby is not None:
            standby.stop()


def stored_ids(store: Store) -> set[str]:
    return {r["id"] for r in store.records_by_arrival(MODEL, limit=1_000_000)}
