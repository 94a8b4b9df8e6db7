"""The command assistant's aggregate: versioned datasets, logged training experiments, and
each user's conversation with it.

A dataset's content is a Parquet file in the data directory (written by
``assistant.datasets``); its row here only points at it. The rows come out as the typed
``DatasetVersion``, ``Experiment``, ``ConversationState`` and ``AssistantExchange``.
Conversations are kept here rather than in a server's memory so that a restart, or another
server process, carries each one on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from mlwarden.clock import as_utc, utcnow
from mlwarden.store.assistant_tables import (
    assistant_conversations,
    assistant_exchanges,
    datasets,
    experiments,
)
from mlwarden.store.base import StoreBase


@dataclass(frozen=True)
class DatasetVersion:
    """One stored version of a dataset; ``path`` is its file's, relative to the data directory."""

    name: str
    version: int
    path: str
    rows: int
    columns: list[str]
    parent_version: int | None
    description: str
    created_at: datetime
    # the cleaning steps that made this version from its parent (None: not a cleaned version,
    # or one cleaned before the steps were kept)
    cleaning: list[dict[str, Any]] | None = None

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "rows": self.rows,
            "columns": list(self.columns),
            "parent_version": self.parent_version,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class ConversationState:
    """What the assistant remembers of one conversation: who acts, and what "it" is."""

    key: str
    actor: str
    last_dataset: str | None
    last_model: str | None


@dataclass(frozen=True)
class AssistantExchange:
    """One command (or upload) of a conversation and the assistant's answer."""

    at: datetime
    text: str
    status: str
    message: str
    url: str | None = None  # a download the answer offered
    label: str | None = None  # what it names


@dataclass(frozen=True)
class Experiment:
    """One logged training run."""

    id: int
    model: str
    version: int | None
    dataset_name: str
    dataset_version: int
    params: dict[str, Any]
    metrics: dict[str, float]
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "dataset": f"{self.dataset_name} v{self.dataset_version}",
            "params": self.params,
            "metrics": self.metrics,
            "created_at": self.created_at.isoformat(),
        }


def _dataset(row: Any) -> DatasetVersion:
    columns = row.columns
    return DatasetVersion(
        name=row.name,
        version=row.version,
        path=row.path,
        rows=row.rows,
        columns=json.loads(columns) if isinstance(columns, str) else list(columns),
        parent_version=row.parent_version,
        description=row.description,
        created_at=as_utc(row.created_at),
        cleaning=None if row.cleaning is None else [dict(step) for step in row.cleaning],
    )


def _experiment(row: Any) -> Experiment:
    return Experiment(
        id=row.id,
        model=row.model,
        version=row.version,
        dataset_name=row.dataset_name,
        dataset_version=row.dataset_version,
        params=dict(row.params),
        metrics=dict(row.metrics),
        created_at=as_utc(row.created_at),
    )


class AssistantTables(StoreBase):
    """The ``Store``'s queries on the ``datasets`` and ``experiments`` tables."""

    # ------------------------------------------------------------------------------ datasets

    def add_dataset_version(
        self,
        *,
        name: str,
        version: int,
        path: str,
        rows: int,
        columns: Sequence[str],
        parent_version: int | None,
        description: str,
        cleaning: Sequence[Mapping[str, Any]] | None = None,
    ) -> bool:
        """Record version ``version`` of dataset ``name``; False when another writer took that
        number first (nothing written)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(datasets).values(
                        name=name,
                        version=version,
                        path=path,
                        rows=rows,
                        columns=[str(c) for c in columns],
                        parent_version=parent_version,
                        description=description,
                        created_at=utcnow(),
                        cleaning=None if cleaning is None else [dict(step) for step in cleaning],
                    )
                )
        except IntegrityError:
            return False
        return True

    def newest_dataset_version(self, name: str) -> int | None:
        with self.engine.connect() as conn:
            newest = conn.execute(
                select(func.max(datasets.c.version)).where(datasets.c.name == name)
            ).scalar()
        return None if newest is None else int(newest)

    def dataset_versions(self, name: str | None = None) -> list[DatasetVersion]:
        """Every stored version (of ``name`` when given), oldest first."""
        query = select(datasets).order_by(datasets.c.id)
        if name is not None:
            query = query.where(datasets.c.name == name)
        with self.engine.connect() as conn:
            return [_dataset(row) for row in conn.execute(query)]

    def dataset_names(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(select(datasets.c.name).distinct().order_by(datasets.c.name)).scalars()
            )

    def last_dataset_version(self) -> DatasetVersion | None:
        """The most recently stored version of any dataset."""
        with self.engine.connect() as conn:
            row = conn.execute(select(datasets).order_by(datasets.c.id.desc()).limit(1)).first()
        return None if row is None else _dataset(row)

    # --------------------------------------------------------------------------- experiments

    def log_experiment(
        self,
        *,
        model: str,
        version: int | None,
        dataset_name: str,
        dataset_version: int,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
    ) -> int:
        """Log one training run; its id."""
        with self.engine.begin() as conn:
            new_id = conn.execute(
                insert(experiments)
                .values(
                    model=model,
                    version=version,
                    dataset_name=dataset_name,
                    dataset_version=dataset_version,
                    params=dict(params),
                    metrics={k: float(v) for k, v in metrics.items()},
                    created_at=utcnow(),
                )
                .returning(experiments.c.id)
            ).scalar_one()
        return int(new_id)

    def experiment(self, experiment_id: int) -> Experiment | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(experiments).where(experiments.c.id == experiment_id)).first()
        return None if row is None else _experiment(row)

    def experiments(self, model: str | None = None) -> list[Experiment]:
        """Every logged run (of ``model`` when given), oldest first."""
        query = select(experiments).order_by(experiments.c.id)
        if model is not None:
            query = query.where(experiments.c.model == model)
        with self.engine.connect() as conn:
            return [_experiment(row) for row in conn.execute(query)]

    # ------------------------------------------------------------------------- conversations

    def assistant_conversation(self, key: str) -> ConversationState | None:
        table = assistant_conversations
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.key == key)).first()
        if row is None:
            return None
        return ConversationState(row.key, row.actor, row.last_dataset, row.last_model)

    def save_assistant_conversation(self, state: ConversationState, *, limit: int) -> None:
        """Write ``state`` (made or replaced); beyond ``limit`` conversations the least recently
        saved are forgotten with their exchanges, so random keys cannot fill the database."""
        table = assistant_conversations
        values = {
            "actor": state.actor,
            "last_dataset": state.last_dataset,
            "last_model": state.last_model,
            "updated_at": utcnow(),
        }
        with self.engine.begin() as conn:
            existed = conn.execute(select(table.c.key).where(table.c.key == state.key)).first()
            conn.execute(self._upsert(table, ["key"], list(values)).values(key=state.key, **values))
            if existed is not None:  # not a new conversation: none to forget
                return
            stale = select(table.c.key).order_by(table.c.updated_at.desc()).offset(limit)
            old = list(conn.execute(stale).scalars())
            if old:
                conn.execute(delete(table).where(table.c.key.in_(old)))
                conn.execute(
                    delete(assistant_exchanges).where(assistant_exchanges.c.conversation.in_(old))
                )

    def forget_assistant_conversation(self, key: str) -> None:
        """Forget a conversation and its exchanges (its session ended)."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(assistant_conversations).where(assistant_conversations.c.key == key)
            )
            conn.execute(
                delete(assistant_exchanges).where(assistant_exchanges.c.conversation == key)
            )

    def add_assistant_exchange(self, key: str, exchange: AssistantExchange, *, keep: int) -> None:
        """Append ``exchange`` to conversation ``key``, keeping its newest ``keep``."""
        table = assistant_exchanges
        with self.engine.begin() as conn:
            conn.execute(
                insert(table).values(
                    conversation=key,
                    at=exchange.at,
                    text=exchange.text,
                    status=exchange.status,
                    message=exchange.message,
                    url=exchange.url,
                    label=exchange.label,
                )
            )
            oldest_kept = conn.execute(
                select(table.c.id)
                .where(table.c.conversation == key)
                .order_by(table.c.id.desc())
                .offset(keep - 1)
                .limit(1)
            ).scalar()
            if oldest_kept is not None:
                conn.execute(
                    delete(table).where(table.c.conversation == key, table.c.id < oldest_kept)
                )

    def assistant_exchanges(self, key: str, limit: int) -> list[AssistantExchange]:
        """The newest ``limit`` exchanges of conversation ``key``, oldest first."""
        table = assistant_exchanges
        with self.engine.connect() as conn:
            rows = list(
                conn.execute(
                    select(table)
                    .where(table.c.conversation == key)
                    .order_by(table.c.id.desc())
                    .limit(limit)
                )
            )
        return [
            AssistantExchange(as_utc(r.at), r.text, r.status, r.message, r.url, r.label)
            for r in reversed(rows)
        ]
