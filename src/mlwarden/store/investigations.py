"""The investigations aggregate (``investigations``): one row per investigation of a model by
its URL, written as the job goes (state, progress, the probe records and the windows so far), so
a job that fails or a server that stops keeps what was already collected."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, insert, literal, select, text, update

from mlwarden.clock import utcnow
from mlwarden.errors import NotFound
from mlwarden.store import tables as t
from mlwarden.store.base import _dumps, inserted_id, plain_row

if TYPE_CHECKING:
    from mlwarden.store.repository import Store

__all__ = ["FINISHED", "MAX_RECORDS_PAGE", "RECORDS_PAGE", "InvestigationRepo", "RecordsPage"]

FINISHED = ("done", "failed")
# An investigation's probe records come a page at a time: 50,000 probes are ~15 MB of JSON.
RECORDS_PAGE = 1_000
MAX_RECORDS_PAGE = 5_000


def _json(value: Any) -> Any:
    """``value`` as a JSON column holds it: NaN and infinity as null, NumPy values and
    datetimes as plain JSON (a probe answer may hold any of them)."""
    return None if value is None else json.loads(_dumps(value))


@dataclass(frozen=True)
class RecordsPage:
    """One page of an investigation's probe records, in the order they were made: records
    ``offset`` to ``offset + len(records)`` of ``total`` stored; ``next_offset`` is where the
    next page starts (None on the last)."""

    records: list[dict[str, Any]]
    offset: int
    limit: int
    total: int

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.records)
        return end if end < self.total else None

    def as_dict(self) -> dict[str, Any]:
        """The page's position, as the API answers it beside the records."""
        return {
            "offset": self.offset,
            "limit": self.limit,
            "returned": len(self.records),
            "total": self.total,
            "next_offset": self.next_offset,
        }


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

    def records_page(
        self, investigation_id: int, offset: int = 0, limit: int = RECORDS_PAGE
    ) -> RecordsPage:
        """Probe records ``offset`` to ``offset + limit`` of one investigation (at most
        ``MAX_RECORDS_PAGE``), and how many are stored; ``NotFound`` when there is none of
        that id. The database cuts the page out of the stored array (SQLite's ``json_each``,
        PostgreSQL's ``json_array_elements``): only the page crosses to the server, not the
        15 MB of a 50,000-probe investigation."""
        if offset < 0 or not 1 <= limit <= MAX_RECORDS_PAGE:
            raise ValueError(f"offset must be >= 0 and limit 1 to {MAX_RECORDS_PAGE}")
        table = t.investigations
        # the page by its positions, not LIMIT/OFFSET: the database then sorts the page's
        # records only, not the 50,000 before it (a third of the time on SQLite)
        if self.store.dialect == "sqlite":
            page_sql = (
                "SELECT e.value AS record FROM investigations AS i, json_each(i.records) AS e "
                "WHERE i.id = :id AND e.key >= :start AND e.key < :end ORDER BY e.key"
            )
        else:
            page_sql = (
                "SELECT e.record::text AS record FROM investigations AS i, "
                "json_array_elements(i.records) WITH ORDINALITY AS e(record, n) "
                "WHERE i.id = :id AND e.n > :start AND e.n <= :end ORDER BY e.n"
            )
        with self.engine.connect() as conn:
            found = conn.execute(
                select(func.json_array_length(table.c.records).label("total")).where(
                    table.c.id == investigation_id
                )
            ).first()
            if found is None:
                raise NotFound(
                    f"no investigation {investigation_id}", investigation=investigation_id
                )
            rows = conn.execute(
                text(page_sql).bindparams(id=investigation_id, start=offset, end=offset + limit)
            ).all()
        records = [json.loads(r.record) for r in rows]
        return RecordsPage(records, offset, limit, int(found.total or 0))

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest investigations first, without their records or results; each with a
        ``brief`` of its result (summary, incident, severity, likely cause, findings counted)
        read out of the stored result by the database, not the result itself (a thousand
        windows' signals and a report each)."""
        table = t.investigations
        columns = [c for c in table.c if c.name not in ("records", "result")]
        brief = _brief_columns(self.store.dialect)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*columns, *brief).order_by(table.c.id.desc()).limit(max(1, min(limit, 500)))
            ).all()
        out = []
        for row in rows:
            plain = plain_row(row)
            values = {c.name: plain.pop(c.name) for c in brief}
            plain["brief"] = {
                "summary": values["brief_summary"],
                "incident": None
                if values["brief_incident"] is None
                else bool(values["brief_incident"]),
                "severity": values["brief_severity"],
                "root_cause": values["brief_root_cause"],
                "findings": values["brief_findings"],
            }
            out.append(_public(plain))
        return out

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


def _brief_columns(dialect: str) -> list[Any]:
    """The few fields of ``result`` that a list of investigations shows, as columns."""
    result = t.investigations.c.result
    if dialect == "sqlite":
        findings = func.json_array_length(result, "$.findings")
    else:
        findings = func.json_array_length(result.op("->")(literal("findings")))
    return [
        result["summary"].as_string().label("brief_summary"),
        result["incident"].as_boolean().label("brief_incident"),
        result["severity"].as_string().label("brief_severity"),
        result[("root_cause", "title")].as_string().label("brief_root_cause"),
        findings.label("brief_findings"),
    ]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    for key, value in row.items():
        if isinstance(value, datetime):
            row[key] = value.isoformat()
    return row
