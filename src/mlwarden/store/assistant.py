"""The command assistant's aggregate: versioned datasets and logged training experiments.

A dataset's content is a Parquet file in the data directory (written by
``assistant.datasets``); its row here only points at it. The rows come out as the typed
``DatasetVersion`` and ``Experiment``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from mlwarden.clock import as_utc, utcnow
from mlwarden.store.assistant_tables import datasets, experiments
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
