"""RecordWriter: batching, flush on close, journal spill and replay, a real database outage."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pg_proxy import TcpProxy
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from empty_sqlite import migrated_sqlite
from mlwarden.domain import FeatureSpec, ModelSpec, Task
from mlwarden.errors import Conflict, ServiceUnavailable
from mlwarden.store import Store
from mlwarden.store import tables as t
from mlwarden.store import writer as writer_module
from mlwarden.store.writer import RecordWriter, SpillJournal

SPEC = ModelSpec(name="m", task=Task.REGRESSION, features=[FeatureSpec(name="x")])
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1


def rows(start: int, n: int, model: str = "m") -> list[dict]:
    return [
        {"id": f"id{i:07d}", "model": model, "features": {"x": float(i)}, "prediction": i}
        for i in range(start, start + n)
    ]


def distinct_ids(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t.records)).scalar()
        distinct = conn.execute(select(func.count(func.distinct(t.records.c.id)))).scalar()
    return int(total or 0), int(distinct or 0)


def test_writes_in_batches_and_close_flushes(store: Store, tmp_path: Path) -> None:
    store.create_model(SPEC)
    writer = RecordWriter(store, batch_size=100, flush_interval_s=60, journal_dir=tmp_path / "j")
    writer.submit(rows(0, 250))
    # two full batches go out without waiting for the (long) flush interval
    deadline = time.monotonic() + 10
    while writer.stats.written < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.stats.written == 200
    assert writer.stats.pending == 50
    writer.close()
    assert store.count_records("m") == 250
    stats = writer.stats
    assert (stats.submitted, stats.written, stats.pending, stats.journaled) == (250, 250, 0, 0)
    with pytest.raises(ServiceUnavailable, match="closed"):
        writer.submit(rows(0, 1))


def test_flush_waits_and_resubmitted_ids_are_not_stored_twice(store: Store, tmp_path: Path) -> None:
    store.create_model(SPEC)
    with RecordWriter(store, batch_size=64, journal_dir=tmp_path / "j") as writer:
        writer.submit(rows(0, 100))
        assert writer.flush(timeout=10)
        assert store.count_records("m") == 100
        writer.submit(rows(50, 100))  # half already stored
        assert writer.flush(timeout=10)
        assert writer.stats.duplicates == 50
    assert distinct_ids(store) == (150, 150)


def test_received_at_is_stamped_at_submit(sqlite_store: Store, tmp_path: Path) -> None:
    sqlite_store.create_model(SPEC)
    before = datetime.now(UTC)
    with RecordWriter(sqlite_store, journal_dir=tmp_path / "j") as writer:
        writer.submit(rows(0, 1))
    record = sqlite_store.fetch_records("m")[0]
    assert record["received_at"] >= before and record["timestamp"] >= before


def test_queue_limit_refuses_instead_of_growing(sqlite_store: Store, tmp_path: Path) -> None:
    sqlite_store.create_model(SPEC)
    with RecordWriter(
        sqlite_store,
        batch_size=10_000,
        flush_interval_s=60,
        queue_limit=100,
        journal_dir=tmp_path / "j",
    ) as writer:
        writer.submit(rows(0, 100))
        with pytest.raises(ServiceUnavailable, match="queue is full"):
            writer.submit(rows(100, 1))


def test_unreachable_database_spills_then_next_writer_replays(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    down = Store(UNREACHABLE, migrate=False)
    writer = RecordWriter(down, batch_size=40, journal_dir=journal, retry_interval_s=0.05)
    writer.submit(rows(0, 100))
    writer.close(timeout=30)
    assert writer.stats.journaled == 100 and writer.stats.spilled == 100
    lines = [json.loads(line) for p in sorted(journal.glob("*.jsonl")) for line in p.open()]
    assert [row["id"] for row in lines] == [f"id{i:07d}" for i in range(100)]
    # a crash leaves a torn last line behind; it must not break the replay
    with sorted(journal.glob("*.jsonl"))[-1].open("a") as handle:
        handle.write('{"id": "torn", "mod')

    up = Store(migrated_sqlite(tmp_path / "db.sqlite"))
    up.create_model(SPEC)
    replay_started = datetime.now(UTC)
    with RecordWriter(up, journal_dir=journal) as replayer:
        assert replayer.flush(timeout=30)
        assert replayer.stats.spilled == 0
        assert replayer.stats.replayed == 100
    assert up.count_records("m") == 100
    assert not list(journal.glob("*.jsonl"))
    # replayed records arrive (for the monitor's windows) when they land; their own time stays
    stored = up.fetch_records("m")
    assert all(r["received_at"] >= replay_started for r in stored)
    assert all(r["timestamp"] < replay_started for r in stored)


def test_rows_the_database_refuses_are_set_aside(sqlite_store: Store, tmp_path: Path) -> None:
    sqlite_store.create_model(SPEC)
    batch = rows(0, 5) + rows(5, 1, model="ghost") + rows(6, 4)
    with RecordWriter(sqlite_store, journal_dir=tmp_path / "j") as writer:
        writer.submit(batch)
        assert writer.flush(timeout=10)
        assert (writer.stats.written, writer.stats.rejected) == (9, 1)
    assert sqlite_store.count_records("m") == 9
    (rejected,) = list((tmp_path / "j" / "rejected").glob("*.jsonl"))
    entry = json.loads(rejected.read_text())
    assert entry["row"]["id"] == "id0000005" and "ghost" in entry["reason"]


@pytest.mark.postgres
def test_a_row_postgresql_cannot_hold_is_set_aside_and_the_batch_stored(
    pg_url: str, tmp_path: Path
) -> None:
    """A record id longer than the column's 64 characters fails a COPY of the whole batch; the
    writer then stores the batch row by row and sets aside only that row. The COPY's error has
    to reach the writer as one of SQLAlchemy's (bad data, not an outage): a raw driver error
    stopped the writer's loop and lost the rows after the bad one."""
    store = Store(pg_url)
    store.create_model(SPEC)
    bad = {"id": "x" * 80, "model": "m", "features": {"x": 1.0}}
    with RecordWriter(store, journal_dir=tmp_path / "j") as writer:
        writer.submit([*rows(0, 5), bad, *rows(6, 4)])
        assert writer.flush(timeout=30)
        stats = writer.stats
        assert (stats.written, stats.rejected, stats.pending, stats.journaled) == (9, 1, 0, 0)
    assert store.count_records("m") == 9
    (rejected,) = list((tmp_path / "j" / "rejected").glob("*.jsonl"))
    assert json.loads(rejected.read_text())["row"]["id"] == "x" * 80
    store.close()


def test_one_journal_folder_has_one_writer(sqlite_store: Store, tmp_path: Path) -> None:
    with RecordWriter(sqlite_store, journal_dir=tmp_path / "j"), pytest.raises(Conflict):
        SpillJournal(tmp_path / "j")


@pytest.mark.postgres
@pytest.mark.slow
def test_database_outage_mid_stream_loses_nothing_and_stores_nothing_twice(
    pg_url: str, tmp_path: Path
) -> None:
    """Stop the database (for this client: a proxy is killed) while records keep flowing."""
    direct = Store(pg_url)
    direct.create_model(SPEC)

    url = make_url(pg_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    proxied = Store(url.set(port=proxy.port).render_as_string(hide_password=False), migrate=False)
    writer = RecordWriter(
        proxied,
        batch_size=250,
        flush_interval_s=0.02,
        journal_dir=tmp_path / "journal",
        retry_interval_s=0.1,
    )
    total, chunk = 30_000, 100
    outage_started = threading.Event()

    def produce() -> None:
        for start in range(0, total, chunk):
            writer.submit(rows(start, chunk))
            if start == total // 3:
                proxy.kill()
                outage_started.set()
            time.sleep(0.001)

    producer = threading.Thread(target=produce)
    producer.start()
    assert outage_started.wait(60)
    time.sleep(1.0)  # records keep coming while the database is away
    spilled_during_outage = writer.stats.journaled
    proxy.start()  # the database is back
    producer.join(120)
    writer.close(timeout=120)
    proxy.kill()

    assert spilled_during_outage > 0
    stats = writer.stats
    assert stats.submitted == total and stats.pending == 0 and stats.spilled == 0
    assert stats.replayed >= spilled_during_outage
    assert distinct_ids(direct) == (total, total)
    assert direct.count_records("m") == total
    proxied.close()
    direct.close()


def test_a_journal_replays_two_models_that_share_record_ids(store: Store, tmp_path: Path) -> None:
    """Issue 13 item 7: replay skips a record already stored by its own model only."""
    store.create_model(SPEC)
    store.create_model(SPEC.model_copy(update={"name": "n"}))
    store.insert_records(rows(0, 5))  # some of "m" landed before the outage
    journal = SpillJournal(tmp_path / "j")
    journal.append(rows(0, 10) + rows(0, 10, model="n"))
    journal.close()
    with RecordWriter(store, journal_dir=tmp_path / "j") as writer:
        assert writer.flush(30)
        assert (writer.stats.written, writer.stats.duplicates) == (15, 5)
    assert store.count_records("m") == store.count_records("n") == 10


def capture_ids(journal: Path) -> list[str]:
    return [
        json.loads(line)["id"]
        for path in sorted((journal / "capture").glob("*.jsonl"), key=lambda p: int(p.stem))
        for line in path.open()
    ]


def test_durable_rows_are_on_disk_when_submit_completes(store: Store, tmp_path: Path) -> None:
    store.create_model(SPEC)
    journal = tmp_path / "j"
    # a long flush interval: the rows are acknowledged long before the database sees them
    writer = RecordWriter(store, flush_interval_s=60, journal_dir=journal, durable=True)
    done = writer.submit(rows(0, 30))
    assert done is not None
    done.result(timeout=10)
    assert capture_ids(journal) == [f"id{i:07d}" for i in range(30)]
    assert store.count_records("m") == 0
    writer.close()
    assert store.count_records("m") == 30
    assert capture_ids(journal) == []  # stored: the capture log is trimmed
    with RecordWriter(store, journal_dir=tmp_path / "plain") as plain:
        assert plain.submit(rows(30, 1)) is None  # only queued: nothing to wait for


def test_capture_segments_go_once_stored(sqlite_store: Store, tmp_path: Path) -> None:
    sqlite_store.create_model(SPEC)
    journal = tmp_path / "j"
    with RecordWriter(
        sqlite_store, flush_interval_s=0.02, journal_dir=journal, durable=True
    ) as writer:
        for start in range(0, 100, 10):
            writer.submit(rows(start, 10)).result(timeout=10)  # type: ignore[union-attr]
        assert writer.flush(timeout=10)
        assert wait_until(lambda: capture_ids(journal) == [], 10)
    assert sqlite_store.count_records("m") == 100


def wait_until(condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not condition():
        time.sleep(0.02)
    return bool(condition())


def test_concurrent_durable_submits_share_one_fsync(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: callers arriving while a fsync runs are written together by the next."""
    import os

    sqlite_store.create_model(SPEC)
    real_fsync = os.fsync
    calls = []

    def slow_fsync(fd: int) -> None:
        calls.append(fd)
        time.sleep(0.05)  # a slow disk
        real_fsync(fd)

    writer = RecordWriter(sqlite_store, journal_dir=tmp_path / "j", durable=True)
    monkeypatch.setattr(os, "fsync", slow_fsync)
    start = threading.Barrier(64)
    futures = []

    def caller(i: int) -> None:
        start.wait()
        futures.append(writer.submit(rows(i, 1)))

    callers = [threading.Thread(target=caller, args=(i,)) for i in range(64)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    for future in futures:
        future.result(timeout=30)
    fsyncs = len(calls)
    monkeypatch.setattr(os, "fsync", real_fsync)
    writer.close()
    # one per group (plus one for the folder when a segment is created), not one per caller
    assert fsyncs <= 8, fsyncs
    assert sqlite_store.count_records("m") == 64


def test_a_capture_log_left_by_a_killed_process_is_replayed(store: Store, tmp_path: Path) -> None:
    store.create_model(SPEC)
    journal = tmp_path / "j"
    store.insert_records(rows(0, 10))  # the killed writer had stored some of them already
    left = SpillJournal(journal / "capture")
    left.append(rows(0, 25))
    left.close()  # the kernel drops the lock of a killed process the same way
    with RecordWriter(store, journal_dir=journal) as writer:  # not durable itself
        assert writer.stats.recovered == 25
        assert writer.flush(timeout=30)
    assert distinct_ids(store) == (25, 25)
    assert capture_ids(journal) == [] and not list(journal.glob("*.jsonl"))


class FullDisk:
    """Stands in for the journal module's ``os``: while ``full``, writes fail with ENOSPC after
    taking the first few bytes (as a real disk does when it fills in the middle of a write)."""

    def __init__(self) -> None:
        self.full = False
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        if self.full:
            self.failures += 1
            if self.failures % 2:  # a torn write first, then the error
                return os.write(fd, bytes(data[:7]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)


def test_a_failed_journal_write_leaves_no_torn_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FullDisk()
    monkeypatch.setattr(writer_module, "os", disk)
    journal = SpillJournal(tmp_path / "j")
    journal.append(rows(0, 3))
    disk.full = True
    with pytest.raises(OSError, match="No space"):
        journal.append(rows(3, 2))
    disk.full = False
    journal.append(rows(5, 2))
    (segment,) = journal.segments()
    assert [row["id"] for row in journal.read(segment)] == [f"id{i:07d}" for i in (0, 1, 2, 5, 6)]
    assert journal.rows == 5
    journal.close()


def test_database_down_and_disk_full_holds_records_until_either_takes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FullDisk()
    monkeypatch.setattr(writer_module, "os", disk)
    journal = tmp_path / "journal"
    down = Store(UNREACHABLE, migrate=False)
    writer = RecordWriter(down, batch_size=40, journal_dir=journal, retry_interval_s=0.05)
    writer.submit(rows(0, 50))
    assert writer.flush(timeout=30)
    disk.full = True
    writer.submit(rows(50, 100))
    assert not writer.flush(timeout=30)  # nowhere to put them: held, and flush says so
    stats = writer.stats
    assert stats.held == 100 and stats.pending == 100
    assert stats.storage_error is not None and "No space" in stats.storage_error
    # the rows stay in order at the head of the queue while new ones arrive
    writer.submit(rows(150, 10))
    disk.full = False
    assert wait_until(lambda: writer.stats.pending == 0, 30)
    assert writer.stats.held == 0 and writer.stats.storage_error is None
    writer.close(timeout=30)
    assert writer.stats.journaled == 160

    up = Store(migrated_sqlite(tmp_path / "db.sqlite"))
    up.create_model(SPEC)
    with RecordWriter(up, journal_dir=journal) as replayer:
        assert replayer.flush(timeout=30)
    assert distinct_ids(up) == (160, 160)
    assert [r["id"] for r in up.fetch_records("m")] == [f"id{i:07d}" for i in range(160)]


def test_a_full_sqlite_disk_holds_records_in_memory_then_stores_them(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_store.create_model(SPEC)
    disk = FullDisk()
    monkeypatch.setattr(writer_module, "os", disk)
    real_insert = sqlite_store.insert_records

    def insert_on_a_full_disk(batch: list[dict[str, Any]]) -> int:
        if disk.full:  # what SQLite answers when its file cannot grow
            raise OperationalError(
                "INSERT", {}, sqlite3.OperationalError("database or disk is full")
            )
        return real_insert(batch)

    monkeypatch.setattr(sqlite_store, "insert_records", insert_on_a_full_disk)
    with RecordWriter(
        sqlite_store, batch_size=25, journal_dir=tmp_path / "j", retry_interval_s=0.05
    ) as writer:
        disk.full = True
        writer.submit(rows(0, 60))
        assert not writer.flush(timeout=30)
        assert writer.stats.held == 60
        disk.full = False
        assert wait_until(lambda: writer.stats.pending == 0, 30)
        assert writer.flush(timeout=30)
    assert distinct_ids(sqlite_store) == (60, 60)
