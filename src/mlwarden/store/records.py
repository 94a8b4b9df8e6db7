"""The records aggregate: every answer the gateway gave (bulk inserts that ignore a record id
sent twice, reads in time or arrival order, retention) and the labels joined to them."""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import chain
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import (
    Connection,
    Select,
    Text,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    type_coerce,
)

from mlwarden.clock import as_utc, utcnow
from mlwarden.errors import NotFound
from mlwarden.store import tables as t
from mlwarden.store.base import (
    _CHUNK,
    RECORD_KEYS,
    StoreBase,
    _decoded_columns,
    _decoded_records,
    _dumps,
    _dumps_or_null,
    _opt_utc,
    _sqlite_time,
)
from mlwarden.store.batch import RecordBatch
from mlwarden.store.copy import CopyRows, copy_insert_ignore

if TYPE_CHECKING:
    import polars as pl

SERVED_BY = {"live", "fallback", "canary", "shadow", "default", "external"}

RECORD_COLUMNS = (
    "id",
    "model_id",
    "version",
    "ts",
    "received_at",
    "features",
    "prediction",
    "scores",
    "latency_ms",
    "error",
    "served_by",
)

# rows of one INSERT statement on SQLite: 11 values a row, 990 bound values, within the 999
# of SQLite builds before 3.32 (32,766 since)
SQLITE_ROWS_PER_INSERT = 90


@functools.lru_cache(maxsize=8)
def _sqlite_insert(rows: int) -> str:
    """``INSERT ... VALUES (...), (...) ... ON CONFLICT DO NOTHING`` for ``rows`` records."""
    group = "(" + ", ".join("?" for _ in RECORD_COLUMNS) + ")"
    return (
        f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}) VALUES "
        + ", ".join(group for _ in range(rows))
        + " ON CONFLICT (model_id, id) DO NOTHING"
    )


class RecordTables(StoreBase):
    """The ``Store``'s queries on records and feedback."""

    # ----------------------------------------------------------------------------- records

    def _record_params(
        self, rows: Iterable[Mapping[str, Any] | BaseModel]
    ) -> list[tuple[Any, ...]]:
        """Rows as database-ready tuples in ``RECORD_COLUMNS`` order: JSON already encoded,
        times in UTC (on SQLite as the text SQLAlchemy's DateTime writes). Doing it here, once,
        instead of in SQLAlchemy's per-value type processors is most of the speed of bulk
        capture."""
        sqlite = self.dialect == "sqlite"
        convert = _sqlite_time if sqlite else as_utc
        # a request's records share their times and often their answer: each distinct one is
        # converted once (the conversions were a third of the cost of building the rows)
        times: dict[Any, Any] = {}

        def when(value: Any) -> Any:
            converted = times.get(value)
            if converted is None:
                converted = times[value] = convert(value)
            return converted

        answers: dict[tuple[type, Any], str | None] = {}
        now_value = convert(utcnow())
        ids = self._model_ids
        params: list[tuple[Any, ...]] = []
        append = params.append
        for raw in rows:
            row = raw.model_dump() if isinstance(raw, BaseModel) else raw
            model_id = row.get("model_id")
            if model_id is None:
                model_id = ids.get(row["model"]) or self.model_id(row["model"])
            prediction = row.get("prediction_json")
            if prediction is None:
                answer = row.get("prediction")
                # a label (not a float: 0.0 and -0.0 are one key but two texts); keyed by
                # type, as 1 and True are one key but two texts
                if isinstance(answer, str | int):
                    key = (type(answer), answer)
                    prediction = answers.get(key)
                    if prediction is None:
                        prediction = answers[key] = _dumps_or_null(answer)
                else:
                    prediction = _dumps_or_null(answer)
            features = row.get("features_json")
            if features is None:
                features = _dumps(row["features"])
            scores = row.get("scores_json")
            if scores is None:
                scores = _dumps_or_null(row.get("scores"))
            ts_text = row.get("ts_utc")  # naive UTC text from a vectorised producer
            if ts_text is not None:
                ts = ts_text if sqlite else ts_text + "+00:00"
            else:
                ts = row.get("timestamp") or row.get("ts")
                ts = now_value if ts is None else when(ts)
            received = row.get("received_at")
            append(
                (
                    str(row["id"]),
                    model_id,
                    row.get("version"),
                    ts,
                    now_value if received is None else when(received),
                    features,
                    prediction,
                    scores,
                    row.get("latency_ms"),
                    row.get("error"),
                    row.get("served_by") or "external",
                )
            )
        return params

    def _batch_frame(self, batch: RecordBatch) -> pl.DataFrame:
        """A columnar batch as a frame of the database's columns (``RECORD_COLUMNS``)."""
        import polars as pl

        frame = batch.frame
        models = frame.get_column("model").unique().to_list()
        model_ids = {name: self.model_id(name) for name in models}
        received = utcnow()
        sqlite = self.dialect == "sqlite"
        ts = pl.col("ts_utc") if sqlite else pl.col("ts_utc") + "+00:00"
        return frame.select(
            pl.col("id").cast(pl.String),
            pl.col("model").replace_strict(model_ids, return_dtype=pl.Int64).alias("model_id"),
            pl.col("version"),
            ts.alias("ts"),
            pl.lit(_sqlite_time(received) if sqlite else received.isoformat()).alias("received_at"),
            pl.col("features_json"),
            pl.col("prediction_json"),
            pl.col("scores_json"),
            pl.col("latency_ms").cast(pl.Float64),
            pl.col("error"),
            pl.col("served_by"),
        )

    def insert_records(
        self,
        rows: Iterable[Mapping[str, Any] | BaseModel],
        *,
        chunk_size: int | None = None,
    ) -> int:
        """Store prediction records; returns how many were new (an id the same model already
        stored is skipped).

        A row is a mapping (or a ``domain.Record``) with ``id``, ``model`` (name) or
        ``model_id``, ``features`` and optionally ``timestamp``, ``version``, ``prediction``,
        ``scores``, ``latency_ms``, ``error``, ``served_by``, ``received_at``. Bulk producers
        may pass ``features_json`` / ``scores_json`` (already JSON-encoded text) instead of
        ``features`` / ``scores``, and ``ts_utc`` (UTC as "YYYY-MM-DD HH:MM:SS.ffffff")
        instead of ``timestamp``.

        All rows go in one transaction: every one is stored or none is. ``chunk_size`` only
        bounds how many rows are converted and sent to the database at a time (memory).
        """
        items = rows if isinstance(rows, Sequence) else list(rows)
        step = chunk_size or max(len(items), 1)
        with self._tx() as conn:
            return sum(
                self._insert_chunk(conn, items[start : start + step])
                for start in range(0, len(items), step)
            )

    def _insert_chunk(self, conn: Connection, rows: Sequence[Mapping[str, Any] | BaseModel]) -> int:
        if self.dialect == "postgresql":
            if isinstance(rows, RecordBatch):
                # the rows as CSV, written by Polars in Rust: no Python object per value
                frame = self._batch_frame(rows)
                text = io.BytesIO()
                frame.write_csv(text, include_header=False, quote_style="necessary")
                copied = CopyRows(frame.height, csv=text.getvalue())
            else:
                params = self._record_params(rows)
                copied = CopyRows(len(params), tuples=params)
            if not copied.count:
                return 0
            return copy_insert_ignore(conn, "records", RECORD_COLUMNS, ("model_id", "id"), copied)
        if isinstance(rows, RecordBatch):
            params = self._batch_frame(rows).rows()
        else:
            params = self._record_params(rows)
        if not params:
            return 0
        # straight to sqlite3, the values already what the columns hold, SQLITE_ROWS_PER_INSERT
        # rows per statement: sqlite3 releases the GIL around every step of a statement, and a
        # thread that gives it up waits up to the switch interval (5 ms) to get it back while
        # another thread is busy. One row per step, the record writer took about 1 s for 2,000
        # rows beside a busy event loop, fell behind a loaded gateway and its queue grew
        # (docs/benchmarks.md, "The record writer beside a busy event loop")
        full = len(params) - len(params) % SQLITE_ROWS_PER_INSERT
        inserted = 0
        if full:
            inserted += int(
                conn.exec_driver_sql(
                    _sqlite_insert(SQLITE_ROWS_PER_INSERT),
                    [
                        tuple(chain.from_iterable(params[start : start + SQLITE_ROWS_PER_INSERT]))
                        for start in range(0, full, SQLITE_ROWS_PER_INSERT)
                    ],
                ).rowcount
            )
        if full < len(params):
            rest = params[full:]
            inserted += int(
                conn.exec_driver_sql(
                    _sqlite_insert(len(rest)), tuple(chain.from_iterable(rest))
                ).rowcount
            )
        return inserted

    def record_ids_present(self, ids: Iterable[str], model: str | None = None) -> set[str]:
        """The subset of ``ids`` already stored for ``model`` (for any model when None)."""
        ids = list(dict.fromkeys(ids))
        found: set[str] = set()
        model_id = None if model is None else self.model_id(model)
        if model_id is not None and self.dialect == "sqlite":
            # the statement as text: building and caching SQLAlchemy's IN (...) was most of
            # the cost of every batch of labels a simulation sends
            with self.engine.connect() as conn:
                for start in range(0, len(ids), _CHUNK):
                    part = ids[start : start + _CHUNK]
                    marks = ", ".join("?" for _ in part)
                    found.update(
                        row[0]
                        for row in conn.exec_driver_sql(
                            f"SELECT id FROM records WHERE model_id = ? AND id IN ({marks})",
                            (model_id, *part),
                        )
                    )
            return found
        with self.engine.connect() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = select(t.records.c.id).where(
                    t.records.c.id.in_(ids[start : start + _CHUNK])
                )
                if model_id is not None:
                    query = query.where(t.records.c.model_id == model_id)
                found.update(conn.execute(query).scalars())
        return found

    def get_record(self, model: str, record_id: str) -> dict[str, Any]:
        """One record of ``model`` by id, with its label (the fields of :meth:`fetch_records`)."""
        found = self.fetch_records(model, record_id=record_id, limit=1)
        if not found:
            raise NotFound(f"no record {record_id!r} of {model!r}", record=record_id)
        return found[0]

    def count_records(
        self, model: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> int:
        query = (
            select(func.count())
            .select_from(t.records)
            .where(t.records.c.model_id == self.model_id(model))
        )
        if since is not None:
            query = query.where(t.records.c.ts >= as_utc(since))
        if until is not None:
            query = query.where(t.records.c.ts < as_utc(until))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def fetch_records(
        self,
        model: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        after_id: str | None = None,
        version: int | None = None,
        newest_first: bool = False,
        answers_only: bool = False,
        record_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Records of ``model`` in time order (ts, then id), each with its ``label`` or None
        (only the one of id ``record_id`` when given).

        ``since`` is inclusive, ``until`` exclusive. ``after_id`` continues after that record
        in the same order, so a reader can page through a stream without gaps or repeats.
        ``answers_only`` reads only the id, time, features, prediction and label (what an
        incident's diagnosis uses): about half the time on 5,000 records, most of it spent
        decoding the other JSON and time columns.
        """
        model_id = self.model_id(model)
        r, f = t.records, t.feedback
        columns: list[Any] = [r.c.id, r.c.ts, r.c.features, r.c.prediction, f.c.label]
        if not answers_only:
            columns += [
                r.c.version,
                r.c.received_at,
                r.c.scores,
                r.c.latency_ms,
                r.c.error,
                r.c.served_by,
                f.c.ts.label("label_ts"),
            ]
        query = (
            select(*columns)
            .select_from(r.outerjoin(f, t.labels_of_record(r, f)))
            .where(r.c.model_id == model_id)
        )
        if since is not None:
            query = query.where(r.c.ts >= as_utc(since))
        if until is not None:
            query = query.where(r.c.ts < as_utc(until))
        if version is not None:
            query = query.where(r.c.version == version)
        if record_id is not None:
            query = query.where(r.c.id == record_id)
        if after_id is not None:
            with self.engine.connect() as conn:
                after_ts = conn.execute(
                    select(r.c.ts).where(r.c.model_id == model_id, r.c.id == after_id)
                ).scalar()
            if after_ts is None:
                raise NotFound(f"unknown record id {after_id!r}", record=after_id)
            after_ts = as_utc(after_ts)
            query = query.where(or_(r.c.ts > after_ts, and_(r.c.ts == after_ts, r.c.id > after_id)))
        order = (r.c.ts.desc(), r.c.id.desc()) if newest_first else (r.c.ts, r.c.id)
        query = query.order_by(*order).limit(limit)
        out = []
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                item = dict(row._mapping)
                item["model"] = model
                item["timestamp"] = as_utc(item.pop("ts"))
                if not answers_only:
                    item["received_at"] = as_utc(item["received_at"])
                    item["label_ts"] = _opt_utc(item["label_ts"])
                out.append(item)
        return out

    def records_by_arrival(
        self,
        model: str,
        *,
        after: tuple[datetime, str] | None = None,
        until: tuple[datetime, str] | None = None,
        received_before: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        shadow: bool = False,
    ) -> list[dict[str, Any]]:
        """Records of ``model`` in arrival order (``received_at``, then id), shadow copies left
        out (or only them, with ``shadow``), each with its ``label`` or None: the order the
        agent's windows are cut in.

        ``after`` and ``until`` are (received_at, id) keys, the first exclusive, the second
        inclusive (a window's stored end key); ``received_before`` leaves out records that
        arrived later (the window settle time); ``newest_first`` reads from the end, for the
        newest ``limit`` records (returned newest first).
        """
        query = self._arrival_query(
            model, after, until, received_before, limit, newest_first, shadow
        )
        with self.engine.connect() as conn:
            result = conn.execute(query)
            if self.dialect == "sqlite":
                return _decoded_records(result.all())
            rows = [dict(row._mapping) for row in result]
        for row in rows:
            row["timestamp"] = as_utc(row.pop("ts"))
            row["received_at"] = as_utc(row["received_at"])
        return rows

    def columns_by_arrival(
        self,
        model: str,
        *,
        after: tuple[datetime, str] | None = None,
        received_before: datetime | None = None,
        limit: int | None = None,
    ) -> dict[str, Sequence[Any]]:
        """The records ``records_by_arrival`` reads, as one sequence per key of a record
        (``RECORD_KEYS``) instead of one dict per record: what the agent's windows are built
        from (``monitor.window.columns_frame``), without a dict per record to build and take
        apart again (docs/benchmarks.md, "A fleet")."""
        if self.dialect == "sqlite":
            query = self._arrival_query(model, after, None, received_before, limit, False, False)
            with self.engine.connect() as conn:
                return _decoded_columns(conn.execute(query).all())
        # PostgreSQL: psycopg decodes in C, and the dicts are what it hands back anyway
        rows = self.records_by_arrival(
            model, after=after, received_before=received_before, limit=limit
        )
        return {key: [row[key] for row in rows] for key in RECORD_KEYS}

    def _arrival_query(
        self,
        model: str,
        after: tuple[datetime, str] | None,
        until: tuple[datetime, str] | None,
        received_before: datetime | None,
        limit: int | None,
        newest_first: bool,
        shadow: bool,
    ) -> Select[Any]:
        """The statement of ``records_by_arrival`` (its arguments)."""
        r, f = t.records, t.feedback
        # On SQLite the JSON and time columns are read as their stored text and decoded by the
        # callers in one pass (``json.loads``, ``datetime.fromisoformat``): the same values as
        # SQLAlchemy's per-value result processors at a third of the cost, and a window read
        # is most of the agent's pass over a fleet (docs/benchmarks.md, "A fleet")
        raw = self.dialect == "sqlite"
        coded = (r.c.ts, r.c.received_at, r.c.features, r.c.prediction, r.c.scores, f.c.label)
        ts, received, features, prediction, scores, label = (
            [type_coerce(c, Text).label(c.name) for c in coded] if raw else coded
        )
        query = (
            select(
                r.c.id,
                r.c.version,
                ts,
                received,
                features,
                prediction,
                scores,
                r.c.latency_ms,
                r.c.error,
                r.c.served_by,
                label,
            )
            .select_from(r.outerjoin(f, t.labels_of_record(r, f)))
            .where(
                r.c.model_id == self.model_id(model),
                r.c.served_by == "shadow" if shadow else r.c.served_by != "shadow",
            )
        )
        if received_before is not None:
            query = query.where(r.c.received_at <= as_utc(received_before))
        if after is not None:
            end_at, end_id = after[0], after[1]
            query = query.where(
                # the redundant ``>=`` is a range to seek to on the (model_id, received_at)
                # index: PostgreSQL derives none from the OR and would scan from the first record
                r.c.received_at >= as_utc(end_at),
                or_(
                    r.c.received_at > as_utc(end_at),
                    and_(r.c.received_at == as_utc(end_at), r.c.id > end_id),
                ),
            )
        if until is not None:
            end_at, end_id = until[0], until[1]
            query = query.where(
                r.c.received_at <= as_utc(end_at),
                or_(
                    r.c.received_at < as_utc(end_at),
                    and_(r.c.received_at == as_utc(end_at), r.c.id <= end_id),
                ),
            )
        if newest_first:
            query = query.order_by(r.c.received_at.desc(), r.c.id.desc())
        else:
            query = query.order_by(r.c.received_at, r.c.id)
        query = query.limit(limit)
        return query

    def purge_records(self, older_than: datetime) -> int:
        """Delete raw records (and their labels) received before ``older_than``.

        By arrival, not by the record's own timestamp: a backfill of last month's logs is
        monitored before retention may take it."""
        cutoff = as_utc(older_than)
        r, f = t.records, t.feedback
        old = r.c.received_at < cutoff
        with self._tx() as conn:
            conn.execute(delete(f).where(exists().where(t.labels_of_record(r, f), old)))
            return int(conn.execute(delete(r).where(old)).rowcount)

    # ----------------------------------------------------------------------------- feedback

    def add_feedback(
        self, model: str, labels: Iterable[tuple[str, Any]], *, ts: datetime | None = None
    ) -> tuple[int, list[str]]:
        """Store ground-truth labels by record id; returns (accepted, unknown ids).

        Labels for ids that are not records of ``model`` are reported back, not stored. Sending
        a label again for the same record replaces it (the newest label wins).
        """
        model_id = self.model_id(model)
        latest: dict[str, Any] = {}
        for record_id, label in labels:
            latest[str(record_id)] = label
        present = self.record_ids_present(latest, model)
        unknown = [rid for rid in latest if rid not in present]
        when = utcnow() if ts is None else as_utc(ts)
        params = [
            {"record_id": rid, "model_id": model_id, "label": label, "ts": when}
            for rid, label in latest.items()
            if rid in present
        ]
        if params and self.dialect == "sqlite":
            # straight to sqlite3's executemany with the values as the columns hold them (the
            # text SQLAlchemy's JSON and DateTime types write): their per-value processors were
            # most of the cost of a simulation's labels (docs/benchmarks.md, "Simulation speed")
            stamp = _sqlite_time(when)
            texts: dict[tuple[type, Any], str] = {}  # a few distinct labels, each encoded once

            def text(label: Any) -> str:
                if not isinstance(label, str | int):  # a float: 0.0 and -0.0 are one key
                    return _dumps(label)
                key = (type(label), label)
                found = texts.get(key)
                if found is None:
                    found = texts[key] = _dumps(label)
                return found

            with self._tx() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO feedback (record_id, model_id, label, ts) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (model_id, record_id) "
                    "DO UPDATE SET label = excluded.label, ts = excluded.ts",
                    [(p["record_id"], model_id, text(p["label"]), stamp) for p in params],
                )
        elif params:
            with self._tx() as conn:
                conn.execute(
                    self._upsert(t.feedback, ["model_id", "record_id"], ["label", "ts"]), params
                )
        return len(params), unknown

    def count_feedback(self, model: str) -> int:
        query = (
            select(func.count())
            .select_from(t.feedback)
            .where(t.feedback.c.model_id == self.model_id(model))
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)
