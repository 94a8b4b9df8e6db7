"""Windows cut from stored records: each starts right after the last record of the window before
(by its stored key), through retention purges, new arrivals and databases older than the key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from agent_helpers import FEATURES, MODEL, START, setup_deployed
from sqlalchemy import event, insert, update

from mlwarden.agent.loop import Agent
from mlwarden.agent.monitor_source import MonitorSource
from mlwarden.agent.policy import Policy
from mlwarden.domain import DeploymentState
from mlwarden.monitor.engine import Monitor, MonitorConfig
from mlwarden.settings import Settings
from mlwarden.store import agent_tables as at
from mlwarden.store import tables as t
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.migrations import upgrade
from mlwarden.store.repository import Store

SIZE = 40  # records per window
ADVISORY = Policy({"defaults": {"mode": "advisory"}})  # remedies wait for an operator


@pytest.fixture()
def both_store(database_url: str) -> Iterator[Store]:
    """A migrated, empty store on SQLite and on PostgreSQL (this suite's ``store`` is SQLite)."""
    opened = Store(database_url)
    yield opened
    opened.close()


@pytest.fixture()
def evaluated(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The record ids of every window the monitor evaluates, in order."""
    seen: list[list[str]] = []
    process = Monitor.process

    def spy(self: Monitor, window: pd.DataFrame, index: int | None = None) -> Any:
        seen.append([str(i) for i in window["id"]])
        return process(self, window, index=index)

    monkeypatch.setattr(Monitor, "process", spy)
    return seen


def arrived(second: int) -> datetime:
    return START + timedelta(seconds=second)


def arrive(store: Store, elec: pd.DataFrame, first: int, count: int, tie: int = 1) -> list[str]:
    """Store records ``first`` .. ``first + count - 1`` of ``elec`` (after the training rows),
    arriving one second apart in groups of ``tie`` that share a ``received_at``; their ids in
    arrival order."""
    rows = arrival_rows(store, elec, first, count, tie)
    store.insert_records(rows)
    return [r["id"] for r in rows]


def arrival_rows(
    store: Store,
    elec: pd.DataFrame,
    first: int,
    count: int,
    tie: int = 1,
    live: int | None = None,
) -> list[dict[str, Any]]:
    """The records ``arrive`` stores (answered by ``live``, by default the live version)."""
    if live is None:
        live = store.get_deployment(MODEL).live_version  # type: ignore[union-attr]
    rows = []
    for n in range(first, first + count):
        source = elec.iloc[2000 + n]
        when = arrived(n // tie)
        rows.append(
            {
                "id": f"k{n:06d}",  # zero-padded: id order is number order within a tie
                "model": MODEL,
                "version": live,
                "timestamp": when,
                "received_at": when,
                "features": {f: float(source[f]) for f in FEATURES},
                "prediction": int(source["target"]),
                "latency_ms": 5.0,
            }
        )
    return rows


def source_for(store: Store) -> MonitorSource:
    return MonitorSource(store, Settings(window_size=SIZE, reference_size=SIZE))


def check(store: Store, source: MonitorSource) -> list[int]:
    """One agent pass over the model: the numbers of the windows it stored."""
    repo = AgentRepo(store)
    before = repo.last_window(MODEL)
    Agent(store, ADVISORY, source=source).check_model(MODEL)
    after = repo.last_window(MODEL)
    if after is None:
        return []
    return list(range(0 if before is None else before + 1, after + 1))


def test_windows_stay_aligned_after_a_retention_purge(
    both_store: Store, elec: pd.DataFrame, evaluated: list[list[str]]
) -> None:
    store = both_store
    setup_deployed(store, elec)
    ids = arrive(store, elec, 0, 3 * SIZE)
    source = source_for(store)
    assert check(store, source) == [0, 1, 2]
    assert evaluated == [ids[:SIZE], ids[SIZE : 2 * SIZE], ids[2 * SIZE :]]
    # retention deletes the first two windows' records; the third's stay
    removed = store.purge_records(arrived(2 * SIZE))
    assert removed == 2 * SIZE
    new = arrive(store, elec, 3 * SIZE, SIZE)
    evaluated.clear()
    assert check(store, source) == [3]
    assert evaluated == [new]  # by offset, 3 * SIZE would now point past every record
    assert AgentRepo(store).window_end(MODEL, 3) == (arrived(4 * SIZE - 1), new[-1])


def test_each_record_is_in_exactly_one_window_in_arrival_order(
    both_store: Store, elec: pd.DataFrame, evaluated: list[list[str]]
) -> None:
    store = both_store
    setup_deployed(store, elec)
    source = source_for(store)
    ids: list[str] = []
    # batches of uneven sizes whose records share arrival times in threes, so windows end in
    # the middle of batches and of ties; each pass closes only the windows that are full, and
    # retention then takes all but the last few evaluated records, not on a window boundary
    for count in (SIZE - 7, 3 * SIZE // 2, 5, 2 * SIZE + 11, SIZE - 2):
        ids += arrive(store, elec, len(ids), count, tie=3)
        check(store, source)
        if evaluated:
            store.purge_records(arrived((len(evaluated) * SIZE - 6) // 3))
    full = len(ids) // SIZE
    assert AgentRepo(store).last_window(MODEL) == full - 1
    assert evaluated == [ids[w * SIZE : (w + 1) * SIZE] for w in range(full)]
    # a fresh source (an agent restarted) picks up after the stored key as well
    ids += arrive(store, elec, len(ids), SIZE, tie=3)
    evaluated.clear()
    assert check(store, source_for(store)) == [full]
    assert evaluated == [ids[full * SIZE : (full + 1) * SIZE]]


def test_reading_the_next_window_seeks_to_it_instead_of_counting_past_earlier_records(
    store: Store, elec: pd.DataFrame
) -> None:
    setup_deployed(store, elec)
    source = source_for(store)
    arrive(store, elec, 0, 2 * SIZE)
    check(store, source)
    arrive(store, elec, 2 * SIZE, 2 * SIZE)
    reads: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM records" in statement and "ORDER BY records.received_at" in statement:
            reads.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        assert check(store, source) == [2, 3]
        assert len(reads) == 2  # windows 2 and 3 in one read, then 4, not full yet
        arrive(store, elec, 4 * SIZE, SIZE + SIZE // 2)
        assert check(store, source) == [4]
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    # one read closes window 4 and finds window 5 half full: no second read to learn it
    assert len(reads) == 3
    with store.engine.connect() as conn:
        for statement, params in reads:
            assert params[-1] == 0  # OFFSET: no index entries walked and thrown away
            explained = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            plan = " ".join(str(row[-1]) for row in explained)
            # a range seek on the arrival index (bounded above by the settle time)
            assert "ix_records_model_received (model_id=? AND received_at>? AND received_at<?)" in (
                plan
            )


def test_a_window_stored_without_its_end_key_is_continued_by_offset_once(
    both_store: Store, elec: pd.DataFrame, evaluated: list[list[str]]
) -> None:
    store = both_store
    setup_deployed(store, elec)
    ids = arrive(store, elec, 0, 2 * SIZE)
    source = source_for(store)
    assert check(store, source) == [0, 1]
    with store.engine.begin() as conn:  # as stored before the end key was kept
        conn.execute(update(at.signals).values(end_received_at=None, end_record_id=None))
    assert AgentRepo(store).window_end(MODEL, 1) is None
    ids += arrive(store, elec, 2 * SIZE, 2 * SIZE)
    evaluated.clear()
    assert check(store, source) == [2, 3]
    assert evaluated == [ids[2 * SIZE : 3 * SIZE], ids[3 * SIZE :]]
    # the new windows carry their key again, so from here on a purge shifts nothing
    assert AgentRepo(store).window_end(MODEL, 3) == (arrived(4 * SIZE - 1), ids[-1])
    store.purge_records(arrived(3 * SIZE))
    ids += arrive(store, elec, 4 * SIZE, SIZE)
    evaluated.clear()
    assert check(store, source) == [4]
    assert evaluated == [ids[4 * SIZE :]]


def _deploy_as_of_agent01(store: Store, elec: pd.DataFrame) -> int:
    """``setup_deployed`` on a database of revision agent01: its deployment revisions are
    written with the columns of that time (today's Store writes later ones too)."""
    real = store.set_deployment

    def old_columns(model: str, state: DeploymentState, **kw: Any) -> Any:
        with store.engine.begin() as conn:
            conn.execute(
                insert(t.deployment_revisions).values(
                    model_id=store.model_id(model),
                    environment="production",
                    revision=1 + len(revisions),
                    live_version=state.live_version,
                    fallback_version=state.fallback_version,
                    canary_weight=0.0,
                    disabled=False,
                    actor=kw["actor"],
                    reason=kw.get("reason", ""),
                    created_at=START,
                )
            )
        revisions.append(state)

    revisions: list[DeploymentState] = []
    store.set_deployment = old_columns  # type: ignore[method-assign]
    try:
        return int(setup_deployed(store, elec)["v2"])  # live
    finally:
        store.set_deployment = real  # type: ignore[method-assign]


def test_a_database_from_before_the_end_key_migrates_and_continues(
    tmp_path: Path, elec: pd.DataFrame, evaluated: list[list[str]]
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url, migrate=False)
    upgrade(old.engine, "agent01")
    live = _deploy_as_of_agent01(old, elec)
    rows = arrival_rows(old, elec, 0, 3 * SIZE, live=live)
    ids = [r["id"] for r in rows]
    with old.engine.begin() as conn:  # records and window 0, as a server of that time stored them
        conn.execute(
            insert(t.records),
            [
                {
                    "model_id": old.model_id(MODEL),
                    "ts": r["timestamp"],
                    "served_by": "external",
                    **{
                        k: r[k]
                        for k in (
                            "id",
                            "version",
                            "received_at",
                            "features",
                            "prediction",
                            "latency_ms",
                        )
                    },
                }
                for r in rows
            ],
        )
        conn.execute(
            insert(at.signals).values(
                model_id=old.model_id(MODEL), window=0, ts=START, name="window.closed", value=1.0
            )
        )
    old.close()
    store = Store(url)
    try:
        assert AgentRepo(store).window_end(MODEL, 0) is None
        assert check(store, source_for(store)) == [1, 2]
        assert evaluated == [ids[SIZE : 2 * SIZE], ids[2 * SIZE :]]
    finally:
        store.close()


def test_a_window_waits_for_records_still_on_their_way_to_the_database(
    store: Store, elec: pd.DataFrame, evaluated: list[list[str]]
) -> None:
    # the record writer stamps arrival when it queues a record and stores it a flush later:
    # records stamped within the last window_settle_s seconds are not taken into a window yet
    from mlwarden.clock import utcnow

    setup_deployed(store, elec)
    live = store.get_deployment(MODEL).live_version  # type: ignore[union-attr]
    now = utcnow()
    rows = [
        {
            "id": f"w{n:04d}",
            "model": MODEL,
            "version": live,
            "timestamp": now,
            # the last three arrived ten seconds ago; the others a minute ago
            "received_at": now - timedelta(seconds=10 if n >= SIZE - 3 else 60),
            "features": {f: float(elec.iloc[3000 + n][f]) for f in FEATURES},
            "prediction": int(elec.iloc[3000 + n]["target"]),
        }
        for n in range(SIZE)
    ]
    store.insert_records(rows)
    settled = MonitorSource(
        store, Settings(window_size=SIZE, reference_size=SIZE, window_settle_s=30.0)
    )
    assert check(store, settled) == []  # 37 settled records: not a full window yet
    # a writer flushing every 20 s makes the wait 40 s, whatever window_settle_s says
    slow_writer = MonitorSource(
        store,
        Settings(
            window_size=SIZE, reference_size=SIZE, window_settle_s=1.0, write_flush_interval_s=20.0
        ),
    )
    assert check(store, slow_writer) == []
    eager = MonitorSource(
        store, Settings(window_size=SIZE, reference_size=SIZE, window_settle_s=0.0)
    )
    assert check(store, eager) == [0]
    assert sorted(evaluated[0]) == sorted(r["id"] for r in rows)


def test_a_remote_version_learns_its_reference_from_reference_size_records(
    store: Store, elec: pd.DataFrame
) -> None:
    # a model known only by URL has no training sample: its reference is the first
    # reference_size production records, which may be more than one window
    from mlwarden.registry.registry import Registry

    setup_deployed(store, elec)
    remote = Registry(store).add_remote_version(MODEL, "http://127.0.0.1:9/predict")
    store.set_deployment(
        MODEL, DeploymentState(live_version=remote.number), actor="ci", reason="remote"
    )
    arrive(store, elec, 0, 3 * SIZE)
    source = MonitorSource(
        store, Settings(window_size=SIZE, reference_size=2 * SIZE + 5, window_settle_s=0.0)
    )
    assert [w.window for w in source.closed_windows(MODEL, None)] == [0, 1, 2]
    (version, monitor) = source._monitors[MODEL]
    assert version == remote.number and monitor.reference.rows == 2 * SIZE + 5


def test_a_window_takes_the_labels_of_its_own_model_only(
    both_store: Store, elec: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13 item 7: record ids are per model, so the label join is by model and id."""
    store = both_store
    setup = setup_deployed(store, elec)
    ids = arrive(store, elec, 0, SIZE)
    twin = setup["spec"].model_copy(update={"name": "twin"})
    store.create_model(twin)
    store.insert_records(
        [{"id": i, "model": "twin", "features": {f: 0.0 for f in FEATURES}} for i in ids]
    )
    assert store.add_feedback("twin", [(i, 1) for i in ids]) == (SIZE, [])
    assert store.add_feedback(MODEL, [(ids[0], 0)]) == (1, [])
    labels: list[list[Any]] = []
    process = Monitor.process

    def spy(self: Monitor, window: pd.DataFrame, index: int | None = None) -> Any:
        labels.append(window["label"].tolist())
        return process(self, window, index=index)

    monkeypatch.setattr(Monitor, "process", spy)
    assert check(store, source_for(store)) == [0]
    assert labels[0][0] == 0 and all(pd.isna(v) for v in labels[0][1:])


def test_the_agents_monitors_hold_no_window_for_late_labels(
    both_store: Store, elec: pd.DataFrame
) -> None:
    """A window's labels are those stored when it closes: whatever the policy says of late
    labels, the agent's monitors hold none (50 windows were 7-10 MB a model)."""
    store = both_store
    setup_deployed(store, elec)
    arrive(store, elec, 0, 2 * SIZE)
    source = MonitorSource(
        store,
        Settings(window_size=SIZE, reference_size=SIZE),
        detection=lambda model: MonitorConfig(late_label_windows=50),
    )
    assert check(store, source) == [0, 1]
    monitor = source._monitors[MODEL][1]
    assert monitor.config.late_label_windows == 0 and not monitor._held
    assert monitor.add_labels({"anything": 1}) == [] and monitor.unknown_labels == 1


def test_a_probed_remote_version_learns_its_confidence_baseline_from_its_first_records(
    store: Store, elec: pd.DataFrame
) -> None:
    """A remote version holds a reference sample (the rows its prober sends) but no answers to
    it: the baseline of its outputs and confidence is its first production records, so a
    confidence collapse from 0.6-0.95 to 0.1-0.3 is found in probe mode too."""
    import numpy as np

    from mlwarden.registry.registry import Registry

    setup_deployed(store, elec)
    sample = [
        {f: float(v) for f, v in row.items()}
        for row in elec.iloc[:200][FEATURES].to_dict("records")
    ]
    remote = Registry(store).add_remote_version(
        MODEL, "http://127.0.0.1:9/predict", reference=sample
    )
    store.set_deployment(
        MODEL, DeploymentState(live_version=remote.number), actor="ci", reason="remote"
    )
    assert store.reference_sample(MODEL, remote.number)  # the prober has rows to send
    rows = arrival_rows(store, elec, 0, 4 * SIZE, live=remote.number)
    rng = np.random.default_rng(0)
    for n, row in enumerate(rows):
        low, high = (0.6, 0.95) if n < 3 * SIZE else (0.1, 0.3)
        row["scores"] = float(rng.uniform(low, high))
        row["served_by"] = "live"
    store.insert_records(rows)
    source = MonitorSource(
        store, Settings(window_size=SIZE, reference_size=2 * SIZE, window_settle_s=0.0)
    )
    windows = source.closed_windows(MODEL, None)
    assert [w.window for w in windows] == [0, 1, 2, 3]
    (_, monitor) = source._monitors[MODEL]
    assert monitor.reference.rows == 2 * SIZE  # the first records, answers and all
    confidence = [[f for f in w.findings if f.evidence.get("output") == "score"] for w in windows]
    assert confidence[:3] == [[], [], []]
    assert confidence[3] and confidence[3][0].evidence["check"] == "confidence"


def test_accepted_drift_rebases_the_monitors_reference_until_it_is_reopened(
    store: Store, elec: pd.DataFrame
) -> None:
    """``drift.rebaseline_on_accept``: the monitor compares with the records of the windows an
    accepted drift named, and with the registered reference again once it is reopened."""
    from mlwarden.agent.acceptance import accept_incident, reopen_incident

    setup_deployed(store, elec)
    live = store.get_deployment(MODEL).live_version  # type: ignore[union-attr]
    registered = len(store.reference_sample(MODEL, live) or [])
    ids = arrive(store, elec, 0, 4 * SIZE)
    source = source_for(store)
    assert check(store, source) == [0, 1, 2, 3]
    assert source._monitors[MODEL][1].reference.rows == registered != 2 * SIZE
    repo = AgentRepo(store)
    incident = repo.create_incident(MODEL, 0, {"signals": {}}, "drift", scope="drift")
    terms = {"window": 3, "drop": 0.0, "rebaseline": {"first": 2, "last": 3, "version": live}}
    accept_incident(store, incident, actor="agent", why="drift without harm", terms=terms)
    arrive(store, elec, 4 * SIZE, SIZE)
    assert check(store, source) == [4]
    rebased = source._monitors[MODEL][1].reference
    assert rebased.rows == 2 * SIZE  # windows 2 and 3: ids[2 * SIZE :]
    assert source._rebased[MODEL] == (incident, 2, 3) and len(ids[2 * SIZE :]) == 2 * SIZE
    reopen_incident(store, incident, actor="ops", why="the drift is a fault after all")
    arrive(store, elec, 5 * SIZE, SIZE)
    assert check(store, source) == [5]
    assert source._monitors[MODEL][1].reference.rows == registered
    assert source._rebased[MODEL] is None
