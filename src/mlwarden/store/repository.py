"""``Store``: the one gateway to the database for every layer of mlwarden.

SQLAlchemy 2 Core over SQLite (default) or PostgreSQL. Records are the hot path: they are
written with one ``executemany`` per batch and ``INSERT … ON CONFLICT DO NOTHING`` so a record
id sent twice (a retried batch, a replayed journal) is stored once. Record ids are unique per
model: another model may use the same id for its own record. Every datetime that goes in
is converted to UTC, every datetime that comes out is timezone-aware UTC (SQLite keeps no
offset, so the store is the one place that normalises it).

>>> from mlwarden.domain import FeatureSpec, ModelSpec, Task
>>> store = Store("sqlite://")
>>> store.create_model(ModelSpec(name="m", task=Task.REGRESSION, features=[FeatureSpec(name="x")]))
>>> store.insert_records([{"id": "r1", "model": "m", "features": {"x": 1.0}, "prediction": 2.0}])
1
>>> store.insert_records([{"id": "r1", "model": "m", "features": {"x": 1.0}, "prediction": 2.0}])
0
>>> store.count_records("m")
1
"""

from __future__ import annotations

from mlwarden.store.assistant import AssistantTables
from mlwarden.store.audit import AuditTables
from mlwarden.store.records import RecordTables
from mlwarden.store.registry import RegistryTables, VersionInfo
from mlwarden.store.sessions import SessionTables


class Store(RegistryTables, RecordTables, AuditTables, AssistantTables, SessionTables):
    """Everything mlwarden persists: models, versions, deployments, records, labels, events,
    the audit chain, API tokens, dashboard sessions and the assistant's datasets and
    experiments, one aggregate per base class (``store.registry``, ``store.records``,
    ``store.audit``, ``store.assistant``, ``store.sessions``; ``store.base`` is what they
    share). The agent's windows, incidents, journal and approvals are read and written through
    ``store.windows.WindowRepo``, ``store.incidents.AgentRepo``, ``store.journal.ActionJournal``
    and ``store.approvals.Approvals`` over a ``Store``.

    ``Store(url)`` opens (and by default migrates to the newest schema) a SQLite file or a
    PostgreSQL database; ``Store(engine)`` uses an engine the caller owns. Thread-safe: each
    call takes its own connection from the pool.
    """


__all__ = ["Store", "VersionInfo"]
