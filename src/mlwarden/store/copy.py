"""PostgreSQL's COPY for inserts that skip a key already stored (records by model and id).

COPY cannot skip a row: it stores all of them or fails. The common batch holds only new
keys, so it is copied straight into the table, inside a savepoint. When a key is already
there (a retried upload, a journal replayed after an outage, two replicas racing), the
unique index fails the COPY; the savepoint is rolled back and the same rows go through a
session-local staging table and one ``INSERT … SELECT … ON CONFLICT DO NOTHING``, whose row
count is exactly the number of new rows. Copying through the staging table every time cost
a third of the rate of a bare COPY (docs/benchmarks.md, "Bulk capture").

Errors leave here as SQLAlchemy's (``IntegrityError``, ``DataError``, ``OperationalError``…),
as they would from ``Connection.execute``: the record writer tells bad data (set the row
aside, store the others) from an outage (journal the batch) by them. The driver's own
exceptions, raised by its cursor, are not SQLAlchemy's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

_SAVEPOINT = "mlwarden_copy"


@dataclass(frozen=True)
class CopyRows:
    """Rows for COPY: either ``csv`` (COPY's CSV format, a line per row, an unquoted empty
    field for NULL) or ``tuples`` (Python values in column order); ``count`` rows either way."""

    count: int
    csv: bytes | None = None
    tuples: Sequence[tuple[Any, ...]] | None = None


def copy_insert_ignore(
    conn: Connection, table: str, columns: Sequence[str], keys: Sequence[str], rows: CopyRows
) -> int:
    """Insert ``rows`` into ``table`` in the transaction of ``conn``, skipping any whose
    ``keys`` are already stored (or repeated in ``rows``); returns how many were new."""
    import psycopg

    names = ", ".join(columns)
    raw = conn.connection.driver_connection
    try:
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.execute(f"SAVEPOINT {_SAVEPOINT}")
            try:
                _copy(cur, table, names, rows)
            except psycopg.errors.UniqueViolation:
                cur.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            else:
                cur.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
                return rows.count
            stage = f"{table}_stage"
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            _copy(cur, stage, names, rows)
            cur.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} "
                f"ON CONFLICT ({', '.join(keys)}) DO NOTHING"
            )
            inserted = int(cur.rowcount)
            cur.execute(f"TRUNCATE {stage}")
            cur.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            return inserted
    except psycopg.Error as exc:
        broken = bool(getattr(raw, "broken", False) or getattr(raw, "closed", False))
        raise DBAPIError.instance(
            f"COPY {table} ({names}) FROM STDIN",
            None,
            exc,
            psycopg.Error,
            connection_invalidated=broken,
            dialect=conn.dialect,
        ) from exc


def _copy(cur: Any, table: str, names: str, rows: CopyRows) -> None:
    if rows.csv is not None:
        with cur.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(rows.csv)
        return
    with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows.tuples or ():
            copy.write_row(row)
