"""Batched, crash-safe writing of prediction records.

``RecordWriter.submit`` only appends to an in-memory queue; a background thread writes batches
with ``Store.insert_records``. When the database is unreachable a batch is appended to a local
journal instead (JSON lines, fsync'd, rolled into segments) and every later batch follows it
there, so order is kept; once the database answers again the segments are replayed oldest first
and deleted. Replay is idempotent because the store skips a record whose model already holds its
id — a batch whose commit reached the server just before the connection died is replayed
without being stored twice. A journal left by a crashed process is replayed when the next
writer starts.

In durable mode (``durable=True``, the ``durable_capture`` setting) a record is also appended to
a capture log and fsync'd before ``submit``'s future completes, so a caller that waits for it
(the gateway, before it answers) knows the record survives a kill. Callers submitting at the
same moment share one write and one fsync (group commit). A capture segment is deleted once
the writer has stored or journaled every row in it; the segments a killed process left behind
are handed to the spill journal when the next writer starts, and so replayed like it.

>>> import tempfile
>>> from mlwarden.domain import FeatureSpec, ModelSpec, Task
>>> store = Store("sqlite://")
>>> store.create_model(ModelSpec(name="m", task=Task.REGRESSION, features=[FeatureSpec(name="x")]))
>>> writer = RecordWriter(store, batch_size=100, journal_dir=tempfile.mkdtemp())
>>> writer.submit([{"id": str(i), "model": "m", "features": {"x": i}} for i in range(250)])
>>> writer.close()
>>> store.count_records("m"), writer.stats.written
(250, 250)
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from mlwarden.clock import utcnow
from mlwarden.errors import Conflict, MlwardenError, ServiceUnavailable
from mlwarden.store.repository import Store

log = logging.getLogger(__name__)

_TIME_KEYS = ("timestamp", "ts", "received_at")
# the capture log of durable mode, inside the journal folder
CAPTURE_FOLDER = "capture"
# server processes that can share one data folder, each with its own journal folder
MAX_JOURNAL_SLOTS = 64

# rows per capture segment: a segment is deleted once all its rows are stored, so this bounds
# the disk it holds and the rows a restart hands to the replay a second time
CAPTURE_SEGMENT_ROWS = 10_000


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` means "the database is not answering" (retry later), not "bad data"."""
    if isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class JournalUnwritable(Exception):
    """Neither the database nor the spill journal took ``rows`` (the journal's disk is full)."""

    def __init__(self, rows: list[dict[str, Any]], reason: str) -> None:
        super().__init__(reason)
        self.rows = rows


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to the record journal")


def _decode_row(line: str) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(line)
    for key in _TIME_KEYS:
        value = row.get(key)
        if isinstance(value, str):
            row[key] = datetime.fromisoformat(value)
    return row


class SpillJournal:
    """Append-only spill files in one folder: ``<sequence>.jsonl`` segments, oldest first.

    Each append is flushed and fsync'd before it returns, so a record that reached the journal
    survives a crash. A torn last line (a crash in the middle of a write) is skipped on read.
    One process owns a folder at a time (an exclusive lock on ``.lock``).
    """

    def __init__(self, directory: str | os.PathLike[str], *, segment_rows: int = 50_000) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_rows = segment_rows
        self._lock_file = open(self.directory / ".lock", "w")  # noqa: SIM115 - held until close
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_file.close()
            raise Conflict(
                f"the record journal {self.directory} is used by another writer",
                path=str(directory),
            ) from exc
        self._current: int | None = None  # the open segment's file descriptor
        self._current_path: Path | None = None
        self._current_rows = 0
        existing = self.segments()
        self._next_seq = 1 + (int(existing[-1].stem) if existing else 0)
        self.rows = sum(self._count(path) for path in existing)

    @staticmethod
    def _count(path: Path) -> int:
        with path.open("rb") as handle:
            # a torn last line (no newline) was never counted as a row
            return sum(1 for line in handle if line.strip() and line.endswith(b"\n"))

    def segments(self) -> list[Path]:
        """Segment files, oldest first."""
        return sorted(self.directory.glob("*.jsonl"), key=lambda p: int(p.stem))

    @property
    def current_segment(self) -> Path | None:
        """The segment appends go to now (None until the first append after a rotation)."""
        return self._current_path

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` and fsync them. On failure (a full disk: ``OSError``) the segment is
        cut back to where it was, so a half-written line never joins the next append's first
        row, and the error is raised: the caller still holds the rows."""
        payload = "".join(json.dumps(row, default=_json_default) + "\n" for row in rows)
        data = payload.encode("utf-8")
        if self._current is None or self._current_rows >= self.segment_rows:
            self.rotate()
            path = self.directory / f"{self._next_seq:012d}.jsonl"
            self._current = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._next_seq += 1
            self._current_path = path
            self._current_rows = 0
            # the new file's name must survive a power cut too, not only its content
            folder = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        size = os.fstat(self._current).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._current, view) :]
            os.fsync(self._current)
        except OSError:
            try:
                os.ftruncate(self._current, size)
            except OSError:
                self.rotate()  # cannot cut it back: the torn line ends this segment
            raise
        self._current_rows += len(rows)
        self.rows += len(rows)

    def rotate(self) -> None:
        """Close the segment being written so it can be replayed."""
        if self._current is not None:
            os.close(self._current)
            self._current = None
            self._current_path = None

    def read(self, path: Path) -> list[dict[str, Any]]:
        rows = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(_decode_row(line))
                except ValueError:
                    log.warning("skipping a torn line %d of journal segment %s", number, path)
        return rows

    def remove(self, path: Path) -> None:
        """Delete a segment whose rows are all stored."""
        rows = self._count(path)
        path.unlink()
        self.rows -= rows

    def close(self) -> None:
        self.rotate()
        self._lock_file.close()


@dataclass
class WriterStats:
    """Counters of a ``RecordWriter`` (rows, not batches)."""

    submitted: int = 0
    written: int = 0  # new rows stored
    duplicates: int = 0  # rows whose id was already stored (retries, replays)
    journaled: int = 0  # rows ever spilled to the journal
    replayed: int = 0  # rows read back from the journal and handed to the store
    rejected: int = 0  # rows the database refused (unknown model, bad values); kept in rejected/
    pending: int = 0  # rows queued in memory, not yet written or journaled
    spilled: int = 0  # rows in the journal now, waiting for the database
    recovered: int = 0  # rows found at start in the capture log of a killed process
    held: int = 0  # rows kept in memory because neither the database nor the journal took them
    storage_error: str | None = None  # why rows are held (the journal's disk is full), or None


class RecordWriter:
    """Buffer records in memory and write them in batches from a background thread.

    ``submit`` never waits for I/O; ``flush`` waits until everything submitted so far is stored
    or journaled; ``close`` flushes, tries a last replay of the journal, and stops the thread.
    Rows the database refuses outright (an unknown model, a value it cannot store) are not
    retried forever: they are written to ``<journal_dir>/rejected/`` and counted. With
    ``durable`` every submitted row is fsync'd to the capture log first (see the module).
    """

    def __init__(
        self,
        store: Store,
        *,
        journal_dir: str | os.PathLike[str],
        batch_size: int = 2_000,
        flush_interval_s: float = 0.5,
        queue_limit: int = 1_000_000,
        retry_interval_s: float = 1.0,
        segment_rows: int = 50_000,
        durable: bool = False,
    ) -> None:
        if batch_size < 1 or queue_limit < 1:
            raise ValueError("batch_size and queue_limit must be at least 1")
        self.store = store
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.queue_limit = queue_limit
        self.retry_interval_s = retry_interval_s
        self.journal = SpillJournal(journal_dir, segment_rows=segment_rows)
        self._queue: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._capture: SpillJournal | None = None
        self._capture_cond = threading.Condition()
        self._capture_pending: list[tuple[list[dict[str, Any]], Future[None]]] = []
        # capture segment -> rows submitted to the queue once its last row was: the segment
        # can go when the writer has processed that many
        self._capture_segments: dict[Path, int] = {}
        self._capture_stop = False
        recovered = self._adopt_capture_log(Path(journal_dir) / CAPTURE_FOLDER, keep=durable)
        self._stats = WriterStats(spilled=self.journal.rows, recovered=recovered)
        self._processed = 0  # rows written, journaled or rejected: flush() waits on this
        self._stop = False
        self._closed = False
        self._flush_requested = 0
        self._flush_done = 0
        self._oldest = time.monotonic()  # when the oldest queued row arrived (roughly)
        self._next_retry = 0.0  # replay a journal left by an earlier process right away
        self._paused_until = 0.0  # after a failed journal write, rows wait until then
        self._thread = threading.Thread(
            target=self._run, name="mlwarden-record-writer", daemon=True
        )
        self._thread.start()
        self._capture_thread: threading.Thread | None = None
        if self._capture is not None:
            self._capture_thread = threading.Thread(
                target=self._run_capture, name="mlwarden-capture-log", daemon=True
            )
            self._capture_thread.start()

    @classmethod
    def from_settings(cls, store: Store, settings: Any) -> RecordWriter:
        """The writer of one server process, on the first journal folder no other process of
        the same data folder holds: ``journal``, else ``journal-1``, ``journal-2``… (the worker
        processes of ``mlwarden serve --workers N``). A worker that dies frees its folder, and
        the one started in its place takes it and replays what it left."""
        base = Path(settings.journal_dir)
        for slot in range(MAX_JOURNAL_SLOTS):
            folder = base if slot == 0 else base.with_name(f"{base.name}-{slot}")
            try:
                return cls(
                    store,
                    journal_dir=folder,
                    batch_size=settings.write_batch_size,
                    flush_interval_s=settings.write_flush_interval_s,
                    queue_limit=settings.write_queue_limit,
                    durable=settings.durable_capture,
                )
            except Conflict:
                continue
        raise Conflict(
            f"{MAX_JOURNAL_SLOTS} server processes already write records from {base.parent}; "
            "give each host its own data folder",
            path=str(base.parent),
        )

    def _adopt_capture_log(self, folder: Path, *, keep: bool) -> int:
        """Move the rows of a capture log left by a killed process to the spill journal (replayed
        into the database at once, skipping rows already stored); keep the log open when
        ``keep``. Returns the number of rows moved."""
        if not keep and not folder.is_dir():
            return 0
        capture = SpillJournal(folder, segment_rows=CAPTURE_SEGMENT_ROWS)
        moved = 0
        for path in capture.segments():
            rows = capture.read(path)
            if rows:
                self.journal.append(rows)
                moved += len(rows)
            capture.remove(path)
        if moved:
            log.warning("recovered %d records from the capture log of a killed process", moved)
        if keep:
            self._capture = capture
        else:
            capture.close()
        return moved

    # ------------------------------------------------------------------ caller side

    def submit(self, rows: Iterable[Mapping[str, Any] | BaseModel]) -> Future[None] | None:
        """Queue records (see ``Store.insert_records`` for their keys). Never waits for I/O.

        Returns None, or in durable mode a future that completes once the rows are fsync'd to
        the capture log (and fails with ``ServiceUnavailable`` when they could not be written).

        ``received_at`` (and a missing ``timestamp``) is stamped now; a record that spends
        time in the spill journal is stamped again when it is replayed into the database (see
        ``_replay``), while its ``timestamp`` stays. Raises ``ServiceUnavailable``
        when the writer is closed or the queue holds ``queue_limit`` rows already.
        """
        now = utcnow()
        prepared = []
        for raw in rows:
            row = raw.model_dump() if isinstance(raw, BaseModel) else dict(raw)
            if row.get("received_at") is None:
                row["received_at"] = now
            if row.get("timestamp") is None and row.get("ts") is None:
                row["timestamp"] = now
            prepared.append(row)
        if not prepared:
            return None
        with self._cond:
            if self._closed:
                raise ServiceUnavailable("the record writer is closed")
            if len(self._queue) + len(prepared) > self.queue_limit:
                raise ServiceUnavailable(
                    f"the record queue is full ({len(self._queue)} rows waiting); retry later",
                    queue_limit=self.queue_limit,
                )
            if self._capture is None:
                self._enqueue(prepared)
                return None
        done: Future[None] = Future()
        with self._capture_cond:
            if self._capture_stop:
                raise ServiceUnavailable("the record writer is closed")
            self._capture_pending.append((prepared, done))
            self._capture_cond.notify()
        return done

    def _enqueue(self, rows: list[dict[str, Any]]) -> int:
        """Queue ``rows`` (the caller holds ``_cond``); returns the rows submitted so far."""
        if not self._queue:
            self._oldest = time.monotonic()
        self._queue.extend(rows)
        self._stats.submitted += len(rows)
        if len(self._queue) >= self.batch_size:
            self._cond.notify_all()
        return self._stats.submitted

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row submitted so far is stored or journaled (and, when the
        database answers, the journal replayed). False when ``timeout`` ran out first, or when
        rows are still held in memory because the journal's disk is full."""
        with self._cond:
            self._flush_requested += 1
            ticket = self._flush_requested
            self._cond.notify_all()
            done = self._cond.wait_for(
                lambda: self._flush_done >= ticket or not self._thread.is_alive(), timeout
            )
            return done and not self._stats.held

    def close(self, timeout: float | None = 60.0) -> None:
        """Flush, try a last replay, stop the thread. Rows the database could not take stay in
        the journal and are replayed by the next writer on the same folder."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
        # rows waiting for the capture log are written and queued before the writer stops
        with self._capture_cond:
            self._capture_stop = True
            self._capture_cond.notify_all()
        if self._capture_thread is not None:
            self._capture_thread.join(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._capture is not None:
            if self._capture_thread is not None and not self._capture_thread.is_alive():
                self._trim_capture(self._capture)
            self._capture.close()
        self.journal.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def stats(self) -> WriterStats:
        with self._cond:
            snapshot = WriterStats(**vars(self._stats))
            snapshot.pending = self._stats.submitted - self._processed
            snapshot.spilled = self.journal.rows
            return snapshot

    # ------------------------------------------------------------------ capture log thread

    def _run_capture(self) -> None:
        capture = self._capture
        assert capture is not None
        while True:
            with self._capture_cond:
                self._capture_cond.wait_for(
                    lambda: bool(self._capture_pending) or self._capture_stop,
                    self.flush_interval_s,
                )
                group, self._capture_pending = self._capture_pending, []
                stop = self._capture_stop
            try:
                if group:
                    self._commit(capture, group)
                self._trim_capture(capture)
            except Exception:  # the thread must survive anything; callers got their answer
                log.exception("record writer: unexpected error in the capture log")
            if stop and not group:
                return

    def _commit(
        self, capture: SpillJournal, group: list[tuple[list[dict[str, Any]], Future[None]]]
    ) -> None:
        """One write and one fsync for every caller waiting, then queue their rows."""
        rows = [row for part, _ in group for row in part]
        try:
            capture.append(rows)
        except Exception as exc:
            log.error("could not write %d records to the capture log: %s", len(rows), exc)
            failure = ServiceUnavailable(f"the record could not be made durable: {exc}")
            with self._cond:
                self._enqueue(rows)  # still stored when the database takes them
            for _, done in group:
                done.set_exception(failure)
            return
        with self._cond:
            position = self._enqueue(rows)
        segment = capture.current_segment
        if segment is not None:
            self._capture_segments[segment] = position
        for _, done in group:
            done.set_result(None)

    def _trim_capture(self, capture: SpillJournal) -> None:
        """Delete the capture segments whose rows the writer has all stored or journaled."""
        with self._cond:
            processed = self._processed
        for path, position in list(self._capture_segments.items()):
            if processed < position:
                return
            if path == capture.current_segment:
                capture.rotate()
            capture.remove(path)
            del self._capture_segments[path]

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: (
                        self._stop
                        or self._flush_requested > self._flush_done
                        or (
                            len(self._queue) >= self.batch_size
                            and time.monotonic() >= self._paused_until
                        )
                    ),
                    max(
                        0.0,
                        max(self._oldest + self.flush_interval_s, self._paused_until)
                        - time.monotonic(),
                    )
                    if self._queue
                    else self.flush_interval_s,
                )
                stop = self._stop
                flush_ticket = self._flush_requested
                asked = stop or flush_ticket > self._flush_done
                # a partial batch waits for the flush interval, unless someone asks for it now
                take_all = asked or time.monotonic() >= self._oldest + self.flush_interval_s
                paused = not asked and time.monotonic() < self._paused_until
                batches = []
                while not paused and (
                    len(self._queue) >= self.batch_size or (take_all and self._queue)
                ):
                    take = min(self.batch_size, len(self._queue))
                    batches.append([self._queue.popleft() for _ in range(take)])
                self._oldest = time.monotonic()
            held: list[dict[str, Any]] = []
            try:
                for position, batch in enumerate(batches):
                    try:
                        self._write(batch)
                    except JournalUnwritable as exc:
                        held = exc.rows + [row for rest in batches[position + 1 :] for row in rest]
                        self._hold(held, str(exc))
                        break
                else:
                    if batches:
                        self._release()
                if self.journal.rows and (
                    stop or flush_ticket > self._flush_done or time.monotonic() >= self._next_retry
                ):
                    self._replay()
            except Exception:  # the thread must survive anything; rows stay journaled
                log.exception("record writer: unexpected error")
            with self._cond:
                self._flush_done = flush_ticket
                self._cond.notify_all()
                if stop and held:
                    log.error(
                        "record writer stopped with %d records it could neither store nor "
                        "journal (%s): they are lost",
                        len(self._queue),
                        self._stats.storage_error,
                    )
                    return
                if stop and not self._queue:
                    return

    def _done(self, rows: int, **counters: int) -> None:
        with self._cond:
            self._processed += rows
            for name, value in counters.items():
                setattr(self._stats, name, getattr(self._stats, name) + value)

    def _spill(self, batch: list[dict[str, Any]]) -> None:
        try:
            self.journal.append(batch)
        except OSError as exc:
            raise JournalUnwritable(batch, f"the record journal cannot be written: {exc}") from exc
        self._done(len(batch), journaled=len(batch))

    def _hold(self, rows: list[dict[str, Any]], reason: str) -> None:
        """Put rows that found no place back at the head of the queue, in order, and wait a
        retry interval: they stay in memory (bounded by ``queue_limit``, after which ``submit``
        refuses new rows) until the database or the journal takes them."""
        log.error("%s; holding %d records in memory", reason, len(rows))
        with self._cond:
            self._queue.extendleft(reversed(rows))
            self._stats.held = len(rows)
            self._stats.storage_error = reason
            self._paused_until = time.monotonic() + self.retry_interval_s

    def _release(self) -> None:
        """Rows were written again: nothing is held any more."""
        if self._stats.held:
            with self._cond:
                log.warning("records are written again after: %s", self._stats.storage_error)
                self._stats.held = 0
                self._stats.storage_error = None

    def _write(self, batch: list[dict[str, Any]]) -> None:
        if self.journal.rows:
            self._spill(batch)  # older rows are waiting in the journal: keep the order
            return
        try:
            inserted = self.store.insert_records(batch)
        except Exception as exc:
            if is_unreachable(exc):
                log.warning("database unreachable, spilling %d records to the journal", len(batch))
                self._next_retry = time.monotonic() + self.retry_interval_s
                self._spill(batch)
                return
            self._isolate(batch, journal_on_outage=True)
            return
        self._done(len(batch), written=inserted, duplicates=len(batch) - inserted)

    def _isolate(self, batch: list[dict[str, Any]], *, journal_on_outage: bool) -> bool:
        """Write a refused batch row by row, setting aside only the rows that are refused.

        ``journal_on_outage`` is True for fresh rows (they count as processed here, and go to
        the journal if the database drops meanwhile) and False for rows replayed from a segment
        (already counted; the segment stays). Returns False when the database went away."""
        for index, row in enumerate(batch):
            try:
                inserted = self.store.insert_records([row])
            except Exception as exc:
                if is_unreachable(exc):
                    self._next_retry = time.monotonic() + self.retry_interval_s
                    if journal_on_outage:
                        self._spill(batch[index:])
                    return False
                if not isinstance(exc, MlwardenError | DBAPIError | ValueError | TypeError):
                    raise
                self._reject(row, exc)
                self._done(int(journal_on_outage), rejected=1)
                continue
            self._done(int(journal_on_outage), written=inserted, duplicates=1 - inserted)
        return True

    def _reject(self, row: dict[str, Any], exc: BaseException) -> None:
        folder = self.journal.directory / "rejected"
        folder.mkdir(exist_ok=True)
        reason = getattr(exc, "message", None) or str(exc).splitlines()[0]
        log.error("record %s refused by the database: %s", row.get("id"), reason)
        with (folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl").open("a") as handle:
            handle.write(json.dumps({"reason": reason, "row": row}, default=_json_default) + "\n")

    def _replay(self) -> None:
        """Hand journal segments to the store, oldest first; delete each once stored."""
        self.journal.rotate()
        for path in self.journal.segments():
            rows = self.journal.read(path)
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                # stamped again as they land: monitoring windows read records in arrival order
                # and never go back, so a window closed during the outage would skip records
                # that kept their first arrival time (their event time ``ts`` is kept)
                landed = utcnow()
                for row in chunk:
                    row["received_at"] = landed
                try:
                    inserted = self.store.insert_records(chunk)
                except Exception as exc:
                    if is_unreachable(exc):
                        self._next_retry = time.monotonic() + self.retry_interval_s
                        return  # the segment stays; chunks already in are skipped next time
                    if not self._isolate(chunk, journal_on_outage=False):
                        return
                    self._done(0, replayed=len(chunk))
                    continue
                self._done(
                    0, replayed=len(chunk), written=inserted, duplicates=len(chunk) - inserted
                )
            self.journal.remove(path)
            log.info("replayed journal segment %s (%d records)", path.name, len(rows))


__all__ = ["JournalUnwritable", "RecordWriter", "SpillJournal", "WriterStats", "is_unreachable"]
