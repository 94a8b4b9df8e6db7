"""The investigations aggregate (``investigations``): one row per investigation of a model by
its URL, written as the job goes (state, progress, the probe records and the windows so far), so
a job that fails or a server that stops keeps what was already collected."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, insert, select, update

from mlwarden.clock import utcnow
from mlwarden.errors import NotFound
from mlwarden.store import tables as t
from mlwarden.store.base import _dumps, inserted_id, plain_row

if TYPE_CHECKING:
    from mlwarden.store.repository import Store

__all__ = ["FINISHED", "InvestigationRepo"]

FINISHED = ("done", "failed")


def _json(value: Any) -> Any:
    """``value`` as a JSON column holds it: NaN and infinity as null, NumPy values and
    datetimes as plain JSON (a probe answer may hold any of them)."""
    return None if value is None else json.loads(_dumps(value))


class InvestigationRepo:
    """Reads and writes the ``investigations`` of one ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    def create(self, url: str, params: Mapping[str, Any], actor: str) -> int:
        """Record a new investigation, ``queued``; returns its id."""
        now = utcnow()
        with self.engine.begin() as conn:
            return inserted_id(
                conn.execute(
                    insert(t.investigations).values(
                        url=url,
                        state="queued",
                        actor=actor,
                        created_at=now,
                        updated_at=now,
                        params=_json(dict(params)),
                        progress={"stage": "queued", "done": 0, "total": 0},
                    )
                )
            )

    def save(
        self,
        investigation_id: int,
        *,
        state: str | None = None,
        progress: Mapping[str, Any] | None = None,
        result: Mapping[str, Any] | None = None,
        records: list[dict[str, Any]] | None = None,
        error: str | None = None,
    ) -> None:
        """Write what changed (the arguments given); a finished state stamps ``finished_at``."""
        now = utcnow()
        values: dict[str, Any] = {"updated_at": now}
        if state is not None:
            values["state"] = state
            if state in FINISHED:
                values["finished_at"] = now
        if progress is not None:
            values["progress"] = _json(dict(progress))
        if result is not None:
            values["result"] = _json(dict(result))
        if records is not None:
            values["records"] = _json(records)
        if error is not None:
            values["error"] = error
        table = t.investigations
        with self.engine.begin() as conn:
            conn.execute(update(table).where(table.c.id == investigation_id).values(**values))

    def get(self, investigation_id: int, *, with_records: bool = False) -> dict[str, Any]:
        """One investigation as a dict; ``NotFound`` when there is none of that id. Its probe
        records (up to thousands) only when asked."""
        table = t.investigations
        columns = [c for c in table.c if with_records or c.name != "records"]
        with self.engine.connect() as conn:
            row = conn.execute(select(*columns).where(table.c.id == investigation_id)).first()
        if row is None:
            raise NotFound(f"no investigation {investigation_id}", investigation=investigation_id)
        return _public(plain_row(row))

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest investigations first, without their records or results."""
        table = t.investigations
        columns = [c for c in table.c if c.name not in ("records", "result")]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*columns).order_by(table.c.id.desc()).limit(max(1, min(limit, 500)))
            ).all()
        return [_public(plain_row(r)) for r in rows]

    def interrupt_unfinished(self, reason: str, *, idle_since: datetime | None = None) -> int:
        """Mark queued or running investigations failed with ``reason``, those not written
        since ``idle_since`` (None: all of them); returns how many. A server that starts
        calls this: their runner is gone (on SQLite, the only server; on PostgreSQL, one that
        stopped writing progress while other replicas' jobs keep writing theirs)."""
        table = t.investigations
        now = utcnow()
        where: ColumnElement[bool] = table.c.state.in_(("queued", "running"))
        if idle_since is not None:
            where = where & (table.c.updated_at < idle_since)
        with self.engine.begin() as conn:
            result = conn.execute(
                update(table)
                .where(where)
                .values(state="failed", error=reason, updated_at=now, finished_at=now)
            )
        return int(result.rowcount or 0)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    for key, value in row.items():
        if isinstance(value, datetime):
            row[key] = value.isoformat()
    return row
