"""Incidents' dashboard diagnoses kept in the database (``incident_diagnoses``).

A diagnosis takes hundreds of milliseconds to seconds to make; kept only in a server process's
memory, each process (``mlwarden serve --workers N``, each replica) made its own at every
window. Kept here, the one made by any process is read by all (one indexed row, about 10 kB
of JSON). The row is replaced by the next diagnosis made of the incident and deleted with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from mlwarden.clock import utcnow
from mlwarden.store import agent_tables as at

if TYPE_CHECKING:
    from mlwarden.store.repository import Store

__all__ = ["StoredDiagnoses", "StoredDiagnosis"]


@dataclass(frozen=True)
class StoredDiagnosis:
    """One incident's stored diagnosis: the incident's state it was made for (``key``), the
    newest window it saw, the incident's headline then, and the diagnosis as JSON."""

    key: str
    as_of: int
    headline: list[Any]
    diagnosis: str


class StoredDiagnoses:
    """Reads and writes the ``incident_diagnoses`` of one ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, incident_id: int) -> StoredDiagnosis | None:
        t = at.incident_diagnoses
        with self.store.engine.connect() as conn:
            row = conn.execute(
                select(t.c.key, t.c.as_of, t.c.headline, t.c.diagnosis).where(
                    t.c.incident_id == incident_id
                )
            ).first()
        if row is None:
            return None
        return StoredDiagnosis(row.key, int(row.as_of), list(row.headline), row.diagnosis)

    def key(self, incident_id: int) -> str | None:
        """The incident's state the stored diagnosis was made for (without reading it)."""
        t = at.incident_diagnoses
        with self.store.engine.connect() as conn:
            key = conn.execute(select(t.c.key).where(t.c.incident_id == incident_id)).scalar()
        return None if key is None else str(key)

    def put(self, incident_id: int, stored: StoredDiagnosis) -> bool:
        """Keep ``stored`` as the incident's diagnosis (replacing the one before); False when
        the incident is gone, or another process stored its diagnosis at the same moment."""
        t = at.incident_diagnoses
        values = {
            "key": stored.key,
            "as_of": stored.as_of,
            "headline": stored.headline,
            "diagnosis": stored.diagnosis,
            "made_at": utcnow(),
        }
        try:
            with self.store.engine.begin() as conn:
                conn.execute(delete(t).where(t.c.incident_id == incident_id))
                conn.execute(insert(t).values(incident_id=incident_id, **values))
        except IntegrityError:
            return False
        return True
