"""The agent's pass over worker processes (``agent.workers``): the same windows, incidents and
actions as in one process, on SQLite and PostgreSQL; a worker killed mid-pass loses no window;
the setting validated."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from agent_helpers import FEATURES, START, train
from pydantic import ValidationError

from empty_sqlite import migrated_sqlite
from mlwarden.agent.loop import Agent, default_source
from mlwarden.agent.monitor_source import MonitorSource
from mlwarden.agent.remedies.retrain import dump_estimator
from mlwarden.agent.workers import PooledSource
from mlwarden.domain import DeploymentState, FeatureSpec, ModelSpec, Task
from mlwarden.settings import Settings, cores
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.journal import ActionJournal
from mlwarden.store.repository import Store
from mlwarden.store.windows import WindowRepo

SIZE = 200  # records per window
MODELS = ["m0", "m1", "m2", "m3", "m4"]
BROKEN = "m1"  # its live version answers at random: a performance incident, then a rollback
NULLS = "m3"  # half its records lose a feature from the third window: a quality incident


def fleet_settings(folder: Path) -> Settings:
    return Settings(
        data_dir=folder,
        window_size=SIZE,
        reference_size=SIZE,
        window_settle_s=0.0,
        agent_workers=1,
    )


def seed(store: Store, elec: pd.DataFrame) -> dict[str, Any]:
    """Every model of ``MODELS`` with a healthy fallback v1 and a live v2 (for ``BROKEN``: v2
    trained on shuffled labels); the live version of each model."""
    old = elec.iloc[:2000]
    good = train(old, min_samples_leaf=20)
    rng = np.random.default_rng(0)
    bad = train(old.assign(target=rng.permutation(old["target"].to_numpy())))
    sample = old.sample(300, random_state=0)[[*FEATURES, "target"]].to_dict(orient="records")
    live = {}
    for name in MODELS:
        store.create_model(
            ModelSpec(
                name=name,
                task=Task.CLASSIFICATION,
                features=[FeatureSpec(name=f) for f in FEATURES],
                target="target",
                positive_class=1,
            )
        )
        for number, estimator in ((1, good), (2, bad if name == BROKEN else train(old))):
            store.add_version(
                name,
                kind="sklearn",
                artifact=dump_estimator(estimator),
                training_metrics={"accuracy": float(estimator.score(old[FEATURES], old["target"]))},
                reference_sample=sample,
            )
            store.set_version_health(name, number, "healthy")
            live[name] = estimator
        store.set_deployment(
            name, DeploymentState(live_version=2, fallback_version=1), actor="test", reason="v2"
        )
        store.set_monitoring(name, True, actor="test")
    return live


def write_window(store: Store, elec: pd.DataFrame, live: dict[str, Any], window: int) -> None:
    """One window of labelled records for every model, answered by its live version."""
    for m, name in enumerate(MODELS):
        rows = elec.iloc[2000 + (window * 7 + m) * SIZE // 2 :][:SIZE]
        predictions = live[name].predict(rows[FEATURES])
        records = []
        for i, ((index, row), predicted) in enumerate(
            zip(rows.iterrows(), predictions, strict=True)
        ):
            features = {f: float(row[f]) for f in FEATURES}
            if name == NULLS and window >= 2 and i % 2:
                features["nswdemand"] = None
            at = START + timedelta(minutes=window * SIZE + i)
            records.append(
                {
                    "id": f"{window}-{index}",
                    "model": name,
                    "version": 2,
                    "timestamp": at,
                    "received_at": at,
                    "features": features,
                    "prediction": int(predicted),
                    "latency_ms": 5.0,
                }
            )
        store.insert_records(records)
        store.add_feedback(name, [(f"{window}-{i}", int(t)) for i, t in rows["target"].items()])


def decided(store: Store) -> dict[str, Any]:
    """What the agent stored and did: every window's signals and findings, the incidents and
    the actions."""
    windows, repo = WindowRepo(store), AgentRepo(store)
    return {
        "windows": {
            name: [
                (w.window, w.signals, [f.model_dump() for f in w.findings])
                for w in windows.recent_windows(name, 100)
            ]
            for name in MODELS
        },
        "incidents": sorted(
            (
                i["model"],
                i["scope"],
                i["state"],
                i["first_window"],
                i["last_window"],
                i["diagnosis"],
            )
            for i in repo.list_incidents(limit=1000)
        ),
        "actions": sorted(
            (a["model"], a["kind"], a["state"]) for a in ActionJournal(store).list(limit=1000)
        ),
    }


def run_passes(store: Store, source: MonitorSource, elec: pd.DataFrame, passes: int) -> list[Any]:
    live = seed(store, elec)
    agent = Agent(store, source=source)
    summaries = []
    try:
        for window in range(passes):
            write_window(store, elec, live, window)
            summaries.append(agent.run_once())
    finally:
        if isinstance(source, PooledSource):
            source.close()
    return summaries


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory, elec: pd.DataFrame) -> dict[str, Any]:
    """The fleet's passes with the monitors in the agent's process (SQLite): what both cases of
    the comparison below compare with, made once (the cases keep to one test process)."""
    folder = tmp_path_factory.mktemp("one_process")
    store = Store(migrated_sqlite(folder / "one.db"))
    try:
        run_passes(store, MonitorSource(store, fleet_settings(folder)), elec, 5)
        return decided(store)
    finally:
        store.close()


@pytest.fixture()
def any_store(database_url: str) -> Iterator[Store]:
    opened = Store(database_url)
    yield opened
    opened.close()


@pytest.mark.slow
@pytest.mark.xdist_group("agent_workers_one_process")
def test_two_workers_store_and_decide_what_one_process_does(
    any_store: Store, one_process: dict[str, Any], elec: pd.DataFrame, tmp_path: Path
) -> None:
    source = PooledSource(any_store, fleet_settings(tmp_path), workers=2)
    summaries = run_passes(any_store, source, elec, 5)
    assert not [s for pass_ in summaries for s in pass_ if "error" in s]
    pooled = decided(any_store)
    # the fleet did something to decide on: incidents on both troubled models and an action
    assert {i[0] for i in pooled["incidents"]} >= {BROKEN, NULLS}
    assert pooled["actions"]
    assert sum(len(w) for w in pooled["windows"].values()) == 5 * len(MODELS)
    assert pooled == one_process


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [1, 3])
def test_a_worker_killed_mid_pass_loses_no_window(
    tmp_path: Path, elec: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """The first worker is killed while it starts, before its first model. Asked a model at a
    time, that model fails the pass (the one a worker was closing when it stopped is taken for
    its cause) and is closed on the next; asked three at a time, each of the three is asked
    again alone from a new worker, and none fails."""
    store = Store(migrated_sqlite(tmp_path / "pool.db"))
    source = PooledSource(store, fleet_settings(tmp_path), workers=2)
    monkeypatch.setattr(source, "chunk_size", lambda _requests: chunk)
    live = seed(store, elec)
    agent = Agent(store, source=source)
    start_pass = PooledSource.start_pass
    killed: list[int] = []

    def start_and_kill(self: PooledSource, models: Any) -> None:
        start_pass(self, models)
        if not killed:
            pid = self.worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    monkeypatch.setattr(PooledSource, "start_pass", start_and_kill)
    repo = AgentRepo(store)
    try:
        write_window(store, elec, live, 0)
        first = agent.run_once()
        failed = [s["model"] for s in first if "error" in s]
        # the first worker holds m0, m2 and m4 (models go to the least loaded worker)
        assert failed == ([MODELS[0]] if chunk == 1 else [])
        assert [repo.last_window(m) for m in MODELS] == [None if failed else 0, 0, 0, 0, 0]
        assert killed[0] not in source.worker_pids()
        write_window(store, elec, live, 1)
        second = agent.run_once()
        assert not [s for s in second if "error" in s]
        # a window not stored is read again on the next pass, with the one after it
        for model in MODELS:
            assert [w.window for w in WindowRepo(store).recent_windows(model, 10)] == [0, 1]
    finally:
        source.close()
        store.close()


def test_the_workers_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLWARDEN_AGENT_WORKERS", raising=False)
    assert Settings().agent_workers == cores() >= 1
    monkeypatch.setenv("MLWARDEN_AGENT_WORKERS", "3")
    assert Settings().agent_workers == 3
    for wrong in ("0", "-1", "two"):
        monkeypatch.setenv("MLWARDEN_AGENT_WORKERS", wrong)
        with pytest.raises(ValidationError, match="agent_workers"):
            Settings()
    monkeypatch.delenv("MLWARDEN_AGENT_WORKERS")
    file_store = Store(migrated_sqlite(tmp_path / "x.db"))
    memory_store = Store("sqlite://")
    try:
        pooled = default_source(file_store, Settings(agent_workers=2))
        assert isinstance(pooled, PooledSource) and pooled.workers == 2
        one = default_source(file_store, Settings(agent_workers=1))
        assert type(one) is MonitorSource
        # other processes cannot open an in-memory database: its monitors stay in the agent
        assert type(default_source(memory_store, Settings(agent_workers=2))) is MonitorSource
        with pytest.raises(ValueError, match="in-memory"):
            PooledSource(memory_store, workers=2)
    finally:
        file_store.close()
        memory_store.close()
