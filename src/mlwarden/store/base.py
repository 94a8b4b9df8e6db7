"""What every aggregate of the store shares: the engine and its transactions, the dialect's
upserts, model ids, and the conversions at the database's edge (UTC datetimes, JSON that
holds no NaN)."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

import orjson
from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Select,
    Table,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from mlwarden.clock import as_utc
from mlwarden.errors import NotFound
from mlwarden.store import tables as t
from mlwarden.store.database import make_engine

if TYPE_CHECKING:
    from mlwarden.settings import Settings

GENESIS_HASH = "0" * 64
_CHUNK = 900  # ids per IN (...) query: well under SQLite's bound-parameter limit


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key a one-row INSERT gave its row."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the INSERT reported no primary key")
    return int(key[0])


def _opt_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _stored_json(values: Sequence[Any]) -> list[Any]:
    """A JSON column's values as SQLite returns them, decoded: text to decode, NULL, or a
    number (a column of JSON type has numeric affinity, so SQLite keeps ``1`` as an integer;
    SQLAlchemy hands such a number back as it is, and so does this). Every text is decoded
    in one ``json.loads`` of the texts joined into one array: the same values, without the
    cost of a call per value. orjson reads it (4x faster); the standard library reads what
    orjson refuses: ``NaN`` (as SQLAlchemy wrote it once) and integers beyond 64 bits."""
    texts = [v for v in values if isinstance(v, str)]
    if not texts:
        return list(values)
    joined = f"[{','.join(texts)}]"
    try:
        decoded = iter(orjson.loads(joined))
    except orjson.JSONDecodeError:
        decoded = iter(json.loads(joined))
    return [next(decoded) if isinstance(v, str) else v for v in values]


def _stored_times(values: Sequence[str]) -> list[datetime]:
    """A time column as SQLite returns it (the text SQLAlchemy's DateTime stores), in UTC.

    Each distinct text is parsed once: the records of one request share their arrival time
    (a window of 1,000 records holds a handful), and parsing was most of a time column's
    cost. A ``datetime`` is immutable, so the records sharing a text may share the value."""
    parsed: dict[str, datetime] = {}
    out = []
    for v in values:
        d = parsed.get(v)
        if d is None:
            d = datetime.fromisoformat(v)
            # stored naive, in UTC
            d = parsed[v] = d.replace(tzinfo=UTC) if d.tzinfo is None else as_utc(d)
        out.append(d)
    return out


RECORD_KEYS = (
    "id",
    "version",
    "received_at",
    "features",
    "prediction",
    "scores",
    "latency_ms",
    "error",
    "served_by",
    "label",
    "timestamp",
)


def _decoded_columns(rows: Sequence[tuple[Any, ...]]) -> dict[str, Sequence[Any]]:
    """Records read as SQLite's stored text (see ``Store.records_by_arrival``), decoded
    column by column: one sequence per key of ``RECORD_KEYS``, with the values SQLAlchemy's
    types would give."""
    if not rows:
        return {key: [] for key in RECORD_KEYS}
    rid, version, ts, received, features, prediction, scores, latency, error, served, label = zip(
        *rows, strict=True
    )
    return {
        "id": rid,
        "version": version,
        "received_at": _stored_times(received),
        "features": _stored_json(features),
        "prediction": _stored_json(prediction),
        "scores": _stored_json(scores),
        "latency_ms": latency,
        "error": error,
        "served_by": served,
        "label": _stored_json(label),
        "timestamp": _stored_times(ts),
    }


def _decoded_records(rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """As ``_decoded_columns``, one dict per record."""
    if not rows:
        return []
    columns = _decoded_columns(rows)
    keys = list(columns)
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _sqlite_time(value: datetime) -> str:
    # exactly the text SQLAlchemy's SQLite DateTime stores, so comparisons stay lexical
    return as_utc(value).isoformat(" ", "microseconds")[:26]


# What orjson refuses goes the standard library's way, through one encoder built once
# (``json.dumps`` with an option builds a new one per call). orjson refuses NumPy values,
# non-string keys and integers beyond 64 bits by default; datetimes and dataclasses are refused
# too (passed through), so they are written as before.
_encode_finite = json.JSONEncoder(allow_nan=False).encode
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _dumps(value: Any) -> str:
    """JSON text of a record's value, with NaN and infinities as null. orjson writes most
    values (8x faster than the standard library's encoder, compact, floats spelled
    shortest-round-trip: the same values when read back); what it refuses goes the
    standard library's way."""
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        pass  # numpy values, non-string keys, big integers, datetimes: as below
    try:
        return _encode_finite(value)
    except ValueError:  # NaN / infinity are not JSON: they are stored as null
        return json.dumps(_finite_or_none(value))
    except TypeError:  # numpy scalars and arrays
        return json.dumps(_finite_or_none(_plain(value)))


def _dumps_or_null(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces): what the audit chain hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, allow_nan=False)


def as_json(value: Any) -> Any:
    """``value`` as what a JSON column gives back (the audit chain's canonical form)."""
    return json.loads(canonical_json(value))


def with_model_name(query: Select[Any], table: Table) -> Select[Any]:
    """``query`` over ``table`` (which has a ``model_id``) with the model's name beside each
    row as ``model``: one query, no lookup per row."""
    return query.add_columns(t.models.c.name.label("model")).join(
        t.models, t.models.c.id == table.c.model_id
    )


def plain_row(row: Any) -> dict[str, Any]:
    """A result row as a dict, its datetimes in UTC."""
    out = dict(row._mapping)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = as_utc(value)
    return out


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class StoreBase:
    """The engine of a store and what every aggregate's queries use."""

    def __init__(self, url_or_engine: str | Engine, *, migrate: bool = True) -> None:
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
            self._owns_engine = False
        else:
            url = url_or_engine
            if url in {"sqlite://", "sqlite:///:memory:"}:
                # one shared connection, or every pool checkout would see its own empty database
                self.engine = make_engine(url, poolclass=StaticPool)
            else:
                self.engine = make_engine(url)
            self._owns_engine = True
        self.dialect = self.engine.dialect.name
        self._model_ids: dict[str, int] = {}
        self._audit_lock = threading.Lock()
        if migrate:
            from mlwarden.store.migrations import upgrade

            upgrade(self.engine)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The store named by ``settings.database_url`` (SQLite in ``data_dir`` when unset)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings.resolved_database_url)

    def close(self) -> None:
        """Release pooled connections (the engine is only disposed when the store created it)."""
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _dialect_insert(self, table: Any) -> Any:
        """INSERT with the dialect's ON CONFLICT clauses (both spell them alike)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            return postgresql_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    def _insert_ignore(self, table: Any, keys: Sequence[str]) -> Any:
        return self._dialect_insert(table).on_conflict_do_nothing(index_elements=list(keys))

    def _upsert(self, table: Any, keys: Sequence[str], update_cols: Sequence[str]) -> Any:
        stmt = self._dialect_insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update_cols}
        )

    def model_id(self, name: str) -> int:
        """The database id of model ``name``; ``NotFound`` listing the known names."""
        cached = self._model_ids.get(name)
        if cached is not None:
            return cached
        with self.engine.connect() as conn:
            found = conn.execute(select(t.models.c.id).where(t.models.c.name == name)).scalar()
        if found is None:
            raise NotFound(
                f"unknown model {name!r}; known models: {', '.join(self.model_names()) or 'none'}",
                model=name,
            )
        self._model_ids[name] = int(found)
        return int(found)

    def model_name(self, model_id: int) -> str:
        """The name of the model with database id ``model_id``."""
        with self.engine.connect() as conn:
            return str(
                conn.execute(select(t.models.c.name).where(t.models.c.id == model_id)).scalar()
            )

    def model_names(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(t.models.c.name).order_by(t.models.c.name)).scalars())
