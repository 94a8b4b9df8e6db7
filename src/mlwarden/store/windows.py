"""The windows-and-signals aggregate: every closed window of a model, stored as its signals
(one row per name, plus the ``window.closed`` marker that holds where the window ended) and its
findings; read back as ``WindowView``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import func, insert, or_, select

from mlwarden.clock import as_utc
from mlwarden.domain import Finding
from mlwarden.store import agent_tables as at
from mlwarden.store import tables as t
from mlwarden.store.base import as_json, plain_row

if TYPE_CHECKING:
    from mlwarden.store.repository import Store

WINDOW_CLOSED = "window.closed"  # the signal row every stored window has; it holds its end key


@dataclass
class WindowView:
    """One closed window of a model as the agent sees it: its findings and signals.

    ``others``: the window's findings of other scopes, left out of ``findings`` for an
    incident of one scope; guards still see them (say, never retrain on broken data)."""

    window: int
    findings: list[Finding] = field(default_factory=list)
    signals: dict[str, float] = field(default_factory=dict)
    others: list[Finding] = field(default_factory=list)

    @property
    def every_finding(self) -> list[Finding]:
        return [*self.findings, *self.others]


class SignalRow(NamedTuple):
    """One stored signal value: window, end of the window, name, value."""

    window: int
    ts: datetime
    name: str
    value: float | None


class WindowRepo:
    """Reads and writes the stored windows (signals and findings) of one ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    def save_window(
        self,
        model: str,
        window: int,
        ts: datetime,
        signals: Mapping[str, float | None],
        findings: Sequence[Finding],
        *,
        end_received_at: datetime | None = None,
        end_record_id: str | None = None,
    ) -> bool:
        """Store one closed window; False (and nothing written) when it was stored already.

        ``end_received_at`` / ``end_record_id`` are the arrival key of the window's last record
        (see ``window_end``); a window source that does not read stored records leaves them out.
        """
        model_id = self.store.model_id(model)
        with self.engine.begin() as conn:
            seen = conn.execute(
                select(func.count())
                .select_from(at.signals)
                .where(at.signals.c.model_id == model_id, at.signals.c.window == window)
            ).scalar()
            if seen:
                return False
            values = {**{k: v for k, v in signals.items()}, WINDOW_CLOSED: 1.0}
            end_at = None if end_received_at is None else as_utc(end_received_at)
            conn.execute(
                insert(at.signals),
                [
                    {
                        "model_id": model_id,
                        "window": window,
                        "ts": as_utc(ts),
                        "name": name,
                        "value": None if value is None else float(value),
                        # once per window is enough: the marker row stands for the window
                        "end_received_at": end_at if name == WINDOW_CLOSED else None,
                        "end_record_id": end_record_id if name == WINDOW_CLOSED else None,
                    }
                    for name, value in values.items()
                ],
            )
            if findings:
                conn.execute(
                    insert(at.findings),
                    [
                        {
                            "model_id": model_id,
                            "window": window,
                            "ts": as_utc(ts),
                            "kind": f.kind.value,
                            "detector": f.detector,
                            "features": list(f.features),
                            "statistic": f.statistic,
                            "score": f.score,
                            "threshold": f.threshold,
                            "p_value": f.p_value,
                            "message": f.message,
                            "evidence": as_json(f.evidence),
                        }
                        for f in findings
                    ],
                )
        return True

    def window_end(self, model: str, window: int) -> tuple[datetime, str] | None:
        """The (received_at, id) of the last record of a stored window: the next window starts
        strictly after it. None when the window is unknown or was stored without its end."""
        s = at.signals
        with self.engine.connect() as conn:
            row = conn.execute(
                select(s.c.end_received_at, s.c.end_record_id).where(
                    s.c.model_id == self.store.model_id(model),
                    s.c.window == window,
                    s.c.name == WINDOW_CLOSED,
                )
            ).first()
        if row is None or row.end_received_at is None or row.end_record_id is None:
            return None
        return as_utc(row.end_received_at), str(row.end_record_id)

    def windows_between(self, model: str, since: datetime, before_window: int) -> int:
        """How many stored windows of ``model`` closed after ``since`` and before window
        ``before_window``: how long a version served before a failure began."""
        s = at.signals
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        s.c.model_id == self.store.model_id(model),
                        s.c.name == WINDOW_CLOSED,
                        s.c.window < before_window,
                        s.c.ts > as_utc(since),
                    )
                ).scalar()
                or 0
            )

    def last_window(self, model: str) -> int | None:
        model_id = self.store.model_id(model)
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.max(at.signals.c.window)).where(at.signals.c.model_id == model_id)
            ).scalar()

    def last_windows(self, models: Sequence[str]) -> dict[str, int | None]:
        """``last_window`` of each of ``models`` in one statement (a correlated ``max()``: one
        index seek per model, where a GROUP BY would scan every signal row)."""
        m, s = t.models, at.signals
        last = select(func.max(s.c.window)).where(s.c.model_id == m.c.id).scalar_subquery()
        found: dict[str, int | None] = {}
        with self.engine.connect() as conn:
            for first in range(0, len(models), 500):  # bound the statement's parameters
                names = list(models[first : first + 500])
                rows = conn.execute(select(m.c.name, last).where(m.c.name.in_(names)))
                found |= {name: window for name, window in rows}
        return {name: found.get(name) for name in models}

    def recent_windows(self, model: str, count: int, after: int | None = None) -> list[WindowView]:
        """The last ``count`` stored windows (or those after ``after``), oldest first."""
        model_id = self.store.model_id(model)
        s, f = at.signals, at.findings
        with self.engine.connect() as conn:
            query = select(s.c.window).where(s.c.model_id == model_id).distinct()
            if after is not None:
                query = query.where(s.c.window > after)
            numbers = sorted(conn.execute(query.order_by(s.c.window.desc()).limit(count)).scalars())
            if not numbers:
                return []
            views = {n: WindowView(window=n) for n in numbers}
            # fetched at once and unpacked as tuples: a pass reads 20 windows of ~100 signals,
            # and a row fetched and read by name at a time was most of the cost
            for window, name, value in conn.execute(
                select(s.c.window, s.c.name, s.c.value).where(
                    s.c.model_id == model_id, s.c.window.in_(numbers)
                )
            ).all():
                views[window].signals[name] = value
            for row in conn.execute(
                select(f).where(f.c.model_id == model_id, f.c.window.in_(numbers))
            ):
                views[row.window].findings.append(
                    Finding(
                        kind=row.kind,
                        detector=row.detector,
                        features=row.features or [],
                        statistic=row.statistic,
                        score=row.score,
                        threshold=row.threshold,
                        p_value=row.p_value,
                        window=row.window,
                        message=row.message,
                        evidence=row.evidence or {},
                    )
                )
        return [views[n] for n in numbers]

    def signals(
        self, model: str, name: str | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Signal values newest first (one row per window and name)."""
        model_id = self.store.model_id(model)
        s = at.signals
        query = select(s.c.window, s.c.ts, s.c.name, s.c.value).where(s.c.model_id == model_id)
        if name is not None:
            query = query.where(s.c.name == name)
        query = query.order_by(s.c.window.desc(), s.c.name).limit(limit)
        with self.engine.connect() as conn:
            return [plain_row(r) for r in conn.execute(query)]

    def findings(self, model: str, limit: int = 200) -> list[dict[str, Any]]:
        model_id = self.store.model_id(model)
        f = at.findings
        query = (
            select(f)
            .where(f.c.model_id == model_id)
            .order_by(f.c.window.desc(), f.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [plain_row(r) for r in conn.execute(query)]

    def signal_rows(self, model: str, span: timedelta | int) -> list[SignalRow]:
        """Every signal of ``model``'s stored windows within ``span`` of the newest (a number
        of windows, or a time before the newest window's end), by window and name."""
        s = at.signals
        model_id = self.store.model_id(model)
        with self.engine.connect() as conn:
            newest = conn.execute(
                select(func.max(s.c.window), func.max(s.c.ts)).where(s.c.model_id == model_id)
            ).one()
            if newest[0] is None:
                return []
            query = select(s.c.window, s.c.ts, s.c.name, s.c.value).where(s.c.model_id == model_id)
            if isinstance(span, int):
                query = query.where(s.c.window > newest[0] - span)
            else:
                query = query.where(s.c.ts >= newest[1] - span)
            rows = conn.execute(query.order_by(s.c.window, s.c.name))
            return [SignalRow(r.window, as_utc(r.ts), r.name, r.value) for r in rows]

    def incident_findings(
        self, model_id: int, incident_id: int, first: int, last: int, limit: int = 500
    ) -> list[dict[str, Any]]:
        """The findings tied to an incident or stored for its model in windows ``first`` to
        ``last``, of every scope, by window."""
        f = at.findings
        query = (
            select(f)
            .where(
                f.c.model_id == model_id,
                or_(f.c.incident_id == incident_id, f.c.window.between(first, last)),
            )
            .order_by(f.c.window, f.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [{**r._mapping, "ts": as_utc(r.ts)} for r in conn.execute(query)]

    def signal_rows_between(self, model_id: int, first: int, last: int) -> list[SignalRow]:
        """Every signal of windows ``first`` to ``last`` (both included) of a model."""
        s = at.signals
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.c.window, s.c.ts, s.c.name, s.c.value).where(
                    s.c.model_id == model_id, s.c.window >= first, s.c.window <= last
                )
            ).all()
        return [SignalRow(r.window, as_utc(r.ts), r.name, r.value) for r in rows]
