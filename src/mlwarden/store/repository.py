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

import hashlib
import json
import math
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, field_serializer
from sqlalchemy import (
    Connection,
    Engine,
    Text,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from mlwarden.clock import as_utc, utcnow
from mlwarden.domain import Deployment, DeploymentState, ModelSpec, Role, mask_endpoint
from mlwarden.errors import Conflict, InvalidInput, NotFound
from mlwarden.store import tables as t
from mlwarden.store.assistant import AssistantTables
from mlwarden.store.batch import RecordBatch
from mlwarden.store.database import make_engine
from mlwarden.store.sessions import SessionTables

if TYPE_CHECKING:

    from mlwarden.settings import Settings

VersionKind = Literal["sklearn", "remote"]
Health = Literal["healthy", "unhealthy", "unknown"]
GENESIS_HASH = "0" * 64
_CHUNK = 900  # ids per IN (...) query: well under SQLite's bound-parameter limit
SERVED_BY = {"live", "fallback", "canary", "shadow", "default", "external"}


def _opt_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _stored_json(values: Sequence[Any]) -> list[Any]:
    """A JSON column's values as SQLite returns them, decoded: text to decode, NULL, or a
    number (a column of JSON type has numeric affinity, so SQLite keeps ``1`` as an integer;
    SQLAlchemy hands such a number back as it is, and so does this). Every text is decoded
    in one ``json.loads`` of the texts joined into one array: the same values, without the
    cost of a call per value."""
    texts = [v for v in values if isinstance(v, str)]
    if not texts:
        return list(values)
    decoded = iter(json.loads(f"[{','.join(texts)}]"))
    return [next(decoded) if isinstance(v, str) else v for v in values]


def _stored_times(values: Sequence[str]) -> list[datetime]:
    """A time column as SQLite returns it (the text SQLAlchemy's DateTime stores), in UTC."""
    parsed = [datetime.fromisoformat(v) for v in values]
    # stored naive, in UTC (``as_utc`` inlined for the common case: a call per value costs)
    return [d.replace(tzinfo=UTC) if d.tzinfo is None else as_utc(d) for d in parsed]


def _decoded_records(rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Records read as SQLite's stored text (see ``Store.records_by_arrival``), decoded
    column by column, as dicts with the keys and values SQLAlchemy's types would give."""
    if not rows:
        return []
    rid, version, ts, received, features, prediction, scores, latency, error, served, label = (
        zip(*rows, strict=True)
    )
    columns = {
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
    keys = list(columns)
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _sqlite_time(value: datetime) -> str:
    # exactly the text SQLAlchemy's SQLite DateTime stores, so comparisons stay lexical
    return as_utc(value).isoformat(" ", "microseconds")[:26]


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False)
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


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces): what the audit chain hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, allow_nan=False)


def as_json(value: Any) -> Any:
    """``value`` as what a JSON column gives back (the audit chain's canonical form)."""
    return json.loads(canonical_json(value))


def plain_row(row: Any) -> dict[str, Any]:
    """A result row as a dict, its datetimes in UTC."""
    out = dict(row._mapping)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = as_utc(value)
    return out


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class VersionInfo(BaseModel):
    """A version of a model as the registry and the gateway see it (without the heavy blobs)."""

    model: str
    number: int
    kind: VersionKind
    artifact_sha256: str | None = None
    endpoint: dict[str, Any] | None = None
    timeout_ms: float | None = None
    training_metrics: dict[str, Any] = {}
    feature_importance: dict[str, float] | None = None
    has_reference: bool = False
    health: Health = "unknown"
    description: str = ""
    created_by: str = "system"
    created_at: datetime

    @field_serializer("endpoint")
    def _masked(self, endpoint: dict[str, Any] | None) -> dict[str, Any] | None:
        # credentials are write-only: every dump (API, dashboard, export) masks them, while
        # the gateway and the prober read ``info.endpoint`` itself
        return mask_endpoint(endpoint)


class Store(AssistantTables, SessionTables):
    """Everything mlwarden persists: models, versions, deployments, records, labels, events,
    the audit chain and API tokens.

    ``Store(url)`` opens (and by default migrates to the newest schema) a SQLite file or a
    PostgreSQL database; ``Store(engine)`` uses an engine the caller owns. Thread-safe: each
    call takes its own connection from the pool.
    """

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
    def from_settings(cls, settings: Settings) -> Store:
        """The store named by ``settings.database_url`` (SQLite in ``data_dir`` when unset)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings.resolved_database_url)

    def close(self) -> None:
        """Release pooled connections (the engine is only disposed when the store created it)."""
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> Store:
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

    def _insert_ignore(self, table: Any, keys: Sequence[str]) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        return dialect_insert(table).on_conflict_do_nothing(index_elements=list(keys))

    def _upsert(self, table: Any, keys: Sequence[str], update_cols: Sequence[str]) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = dialect_insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update_cols}
        )

    # ----------------------------------------------------------------------------- models

    def create_model(self, spec: ModelSpec, actor: str = "system") -> None:
        """Register a model; ``Conflict`` when the name is taken."""
        now = utcnow()
        try:
            with self._tx() as conn:
                model_id = conn.execute(
                    insert(t.models).values(
                        name=spec.name,
                        task=spec.task.value,
                        spec=spec.model_dump(mode="json"),
                        monitoring=True,
                        created_at=now,
                    )
                ).inserted_primary_key[0]
                conn.execute(
                    insert(t.events).values(
                        model_id=model_id,
                        ts=now,
                        kind="register",
                        actor=actor,
                        details={"task": spec.task.value, "features": spec.feature_names},
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"model {spec.name!r} already exists", model=spec.name) from exc
        self._model_ids[spec.name] = int(model_id)
        self.audit(actor, "model.register", spec.name, {"task": spec.task.value})

    def update_model(self, spec: ModelSpec, actor: str = "system") -> None:
        """Replace the stored spec of an existing model (its name cannot change)."""
        model_id = self.model_id(spec.name)
        with self._tx() as conn:
            conn.execute(
                update(t.models)
                .where(t.models.c.id == model_id)
                .values(task=spec.task.value, spec=spec.model_dump(mode="json"))
            )
        self.add_event(spec.name, "config", actor, {"spec": "updated"})
        self.audit(actor, "model.update", spec.name, {})

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

    def model_names(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(t.models.c.name).order_by(t.models.c.name)).scalars())

    def get_model(self, name: str) -> ModelSpec:
        """The spec of model ``name``; ``NotFound`` listing the known names."""
        with self.engine.connect() as conn:
            spec = conn.execute(select(t.models.c.spec).where(t.models.c.name == name)).scalar()
        if spec is None:
            self.model_id(name)  # raises NotFound with the known names
        return ModelSpec.model_validate(spec)

    def list_models(self) -> list[ModelSpec]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.models.c.spec).order_by(t.models.c.name)).scalars()
            return [ModelSpec.model_validate(spec) for spec in rows]

    def set_monitoring(self, name: str, on: bool, actor: str = "system") -> None:
        """Switch monitoring of a model on or off (the agent skips models switched off)."""
        model_id = self.model_id(name)
        with self._tx() as conn:
            conn.execute(update(t.models).where(t.models.c.id == model_id).values(monitoring=on))
        self.add_event(name, "config", actor, {"monitoring": on})

    def is_monitored(self, name: str) -> bool:
        model_id = self.model_id(name)
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    select(t.models.c.monitoring).where(t.models.c.id == model_id)
                ).scalar()
            )

    def monitored_models(self) -> list[str]:
        with self.engine.connect() as conn:
            query = select(t.models.c.name).where(t.models.c.monitoring.is_(True))
            return list(conn.execute(query.order_by(t.models.c.name)).scalars())

    # ----------------------------------------------------------------------------- versions

    def add_version(
        self,
        model: str,
        *,
        kind: VersionKind,
        artifact: bytes | None = None,
        endpoint: Mapping[str, Any] | None = None,
        timeout_ms: float | None = None,
        training_metrics: Mapping[str, Any] | None = None,
        reference_sample: list[dict[str, Any]] | None = None,
        feature_importance: Mapping[str, float] | None = None,
        description: str = "",
        actor: str = "system",
    ) -> VersionInfo:
        """Store a new version of ``model``; its number is one more than the newest one."""
        if kind == "sklearn" and not artifact:
            raise InvalidInput("a sklearn version needs its skops artifact bytes")
        if kind == "remote" and (not endpoint or not endpoint.get("url")):
            raise InvalidInput("a remote version needs an endpoint with a url")
        if kind not in ("sklearn", "remote"):
            raise InvalidInput(f"version kind must be 'sklearn' or 'remote', got {kind!r}")
        if timeout_ms is not None and timeout_ms <= 0:
            raise InvalidInput(f"timeout_ms must be positive, got {timeout_ms}")
        model_id = self.model_id(model)
        values = {
            "model_id": model_id,
            "kind": kind,
            "artifact": artifact,
            "artifact_sha256": hashlib.sha256(artifact).hexdigest() if artifact else None,
            "endpoint": dict(endpoint) if endpoint else None,
            "timeout_ms": timeout_ms,
            "training_metrics": json.loads(canonical_json(dict(training_metrics or {}))),
            "reference_sample": (
                json.loads(canonical_json(reference_sample)) if reference_sample else None
            ),
            "feature_importance": dict(feature_importance) if feature_importance else None,
            "health": "unknown",
            "description": description,
            "created_by": actor,
        }
        for _attempt in range(5):
            now = utcnow()
            try:
                with self._tx() as conn:
                    number = 1 + max(
                        conn.execute(
                            select(func.max(t.versions.c.number)).where(
                                t.versions.c.model_id == model_id
                            )
                        ).scalar()
                        or 0,
                        self._deleted_versions(conn, model_id),
                    )
                    conn.execute(insert(t.versions).values(number=number, created_at=now, **values))
                    conn.execute(
                        insert(t.events).values(
                            model_id=model_id,
                            ts=now,
                            kind="version",
                            actor=actor,
                            details={"version": number, "kind": kind},
                        )
                    )
                break
            except IntegrityError:
                continue  # another writer took this number at the same moment; take the next
        else:
            raise Conflict(f"could not allocate a version number for model {model!r}")
        self.audit(actor, "version.add", f"{model}/{number}", {"kind": kind})
        return self.get_version(model, number)

    @staticmethod
    def _deleted_versions(conn: Connection, model_id: int) -> int:
        """The highest number a deleted version had (0 if none), so none is reused."""
        details = conn.execute(
            select(t.events.c.details).where(
                t.events.c.model_id == model_id, t.events.c.kind == "version_deleted"
            )
        ).scalars()
        return max((int(d["version"]) for d in details), default=0)

    def _version_row(self, model: str, number: int, columns: Sequence[Any]) -> Any:
        model_id = self.model_id(model)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(*columns).where(
                    t.versions.c.model_id == model_id, t.versions.c.number == number
                )
            ).first()
        if row is None:
            known = [v.number for v in self.list_versions(model)]
            raise NotFound(
                f"model {model!r} has no version {number}; versions: {known or 'none'}",
                model=model,
                version=number,
            )
        return row

    _INFO_COLUMNS = (
        t.versions.c.number,
        t.versions.c.kind,
        t.versions.c.artifact_sha256,
        t.versions.c.endpoint,
        t.versions.c.timeout_ms,
        t.versions.c.training_metrics,
        t.versions.c.feature_importance,
        t.versions.c.health,
        t.versions.c.description,
        t.versions.c.created_by,
        t.versions.c.created_at,
        t.versions.c.reference_sample.is_not(None).label("has_reference"),
    )

    @staticmethod
    def _info(model: str, row: Any) -> VersionInfo:
        data = dict(row._mapping)
        data["created_at"] = as_utc(data["created_at"])
        data["has_reference"] = bool(data["has_reference"])
        data["training_metrics"] = data["training_metrics"] or {}
        return VersionInfo(model=model, **data)

    def get_version(self, model: str, number: int) -> VersionInfo:
        return self._info(model, self._version_row(model, number, self._INFO_COLUMNS))

    def list_versions(self, model: str) -> list[VersionInfo]:
        model_id = self.model_id(model)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*self._INFO_COLUMNS)
                .where(t.versions.c.model_id == model_id)
                .order_by(t.versions.c.number)
            ).all()
        return [self._info(model, row) for row in rows]

    def load_artifact(self, model: str, number: int) -> bytes:
        """The skops bytes of a sklearn version; ``InvalidInput`` for a remote version."""
        row = self._version_row(model, number, (t.versions.c.kind, t.versions.c.artifact))
        if row.artifact is None:
            raise InvalidInput(
                f"version {number} of {model!r} is a {row.kind} version without an artifact"
            )
        return bytes(row.artifact)

    def reference_sample(self, model: str, number: int) -> list[dict[str, Any]] | None:
        """The training sample stored with a version (features + target), if any."""
        return self._version_row(model, number, (t.versions.c.reference_sample,)).reference_sample

    def set_version_health(self, model: str, number: int, health: Health) -> None:
        if health not in ("healthy", "unhealthy", "unknown"):
            raise InvalidInput(f"health must be healthy, unhealthy or unknown, got {health!r}")
        self._version_row(model, number, (t.versions.c.id,))
        with self._tx() as conn:
            conn.execute(
                update(t.versions)
                .where(t.versions.c.model_id == self.model_id(model), t.versions.c.number == number)
                .values(health=health)
            )

    # ----------------------------------------------------------------------------- deletion

    _ROLES = ("live_version", "canary_version", "shadow_version", "fallback_version")

    def _served(self, conn: Connection, model_id: int) -> list[tuple[str, str, int]]:
        """(environment, role, version) of every version the current deployments name."""
        d = t.deployment_revisions
        newest = (
            select(d.c.environment, func.max(d.c.revision).label("revision"))
            .where(d.c.model_id == model_id)
            .group_by(d.c.environment)
            .subquery()
        )
        rows = conn.execute(
            select(d).join(
                newest,
                (d.c.environment == newest.c.environment) & (d.c.revision == newest.c.revision),
            ).where(d.c.model_id == model_id)
        )
        return [
            (row.environment, role.removesuffix("_version"), getattr(row, role))
            for row in rows
            for role in self._ROLES
            if getattr(row, role) is not None
        ]

    def delete_version(self, model: str, number: int, *, actor: str) -> None:
        """Delete a version that no deployment serves; ``Conflict`` (409) while one does.

        Its records, windows and incidents stay: they are the model's history and name the
        version by number, and a number is never given to another version (the deletion is
        an event that ``add_version`` counts)."""
        model_id = self.model_id(model)
        self._version_row(model, number, (t.versions.c.id,))  # NotFound naming the versions
        with self._tx() as conn:
            serving = [(env, role) for env, role, v in self._served(conn, model_id) if v == number]
            if serving:
                where = ", ".join(f"{role} in {env}" for env, role in serving)
                raise Conflict(
                    f"version {number} of {model!r} is served ({where}); deploy another version "
                    "or remove it from the deployment first",
                    model=model,
                    version=number,
                )
            conn.execute(
                delete(t.versions).where(
                    t.versions.c.model_id == model_id, t.versions.c.number == number
                )
            )
            conn.execute(
                insert(t.events).values(
                    model_id=model_id,
                    ts=utcnow(),
                    kind="version_deleted",
                    actor=actor,
                    details={"version": number},
                )
            )
        self.audit(actor, "version.delete", f"{model}/{number}", {})

    def delete_model(self, model: str, *, actor: str) -> dict[str, int]:
        """Delete a model that serves nothing, with everything stored about it (versions,
        deployment revisions, records, labels, events, windows, findings, incidents, agent
        actions and approvals: the foreign keys cascade). The audit log keeps the deletion.
        ``Conflict`` (409) while a deployment names any of its versions. Returns how many
        versions and records went with it."""
        model_id = self.model_id(model)
        with self._tx() as conn:
            serving = self._served(conn, model_id)
            if serving:
                where = ", ".join(f"v{v} {role} in {env}" for env, role, v in serving)
                raise Conflict(
                    f"model {model!r} is served ({where}); undeploy it first "
                    '(PUT /v1/models/{name}/deployment with {"live_version": null})',
                    model=model,
                )
            counts = {
                "versions": conn.execute(
                    select(func.count()).where(t.versions.c.model_id == model_id)
                ).scalar_one(),
                "records": conn.execute(
                    select(func.count()).where(t.records.c.model_id == model_id)
                ).scalar_one(),
            }
            conn.execute(delete(t.models).where(t.models.c.id == model_id))
        self._model_ids.pop(model, None)
        self.audit(actor, "model.delete", model, counts)
        return counts

    # ----------------------------------------------------------------------------- deployments

    @staticmethod
    def _deployment(model: str, row: Any) -> Deployment:
        return Deployment(
            model=model,
            environment=row.environment,
            revision=row.revision,
            live_version=row.live_version,
            fallback_version=row.fallback_version,
            canary_version=row.canary_version,
            canary_weight=row.canary_weight,
            shadow_version=row.shadow_version,
            disabled=row.disabled,
            default_response=row.default_response,
            input_repair=row.input_repair or {},
            actor=row.actor,
            reason=row.reason,
            created_at=as_utc(row.created_at),
        )

    def get_deployment(self, model: str, environment: str = "production") -> Deployment | None:
        """The current routing of ``model`` in ``environment`` (None before the first deploy)."""
        history = self.deployment_history(model, environment, limit=1)
        return history[0] if history else None

    def deployment_history(
        self, model: str, environment: str = "production", *, limit: int | None = None
    ) -> list[Deployment]:
        """Every revision of the routing, newest first."""
        model_id = self.model_id(model)
        query = (
            select(t.deployment_revisions)
            .where(
                t.deployment_revisions.c.model_id == model_id,
                t.deployment_revisions.c.environment == environment,
            )
            .order_by(t.deployment_revisions.c.revision.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [self._deployment(model, row) for row in conn.execute(query)]

    def set_deployment(
        self,
        model: str,
        state: DeploymentState,
        *,
        actor: str,
        reason: str = "",
        environment: str = "production",
    ) -> Deployment:
        """Write ``state`` as a new revision; every version it names must exist."""
        model_id = self.model_id(model)
        known = {v.number for v in self.list_versions(model)}
        for role in ("live_version", "fallback_version", "canary_version", "shadow_version"):
            number = getattr(state, role)
            if number is not None and number not in known:
                raise NotFound(
                    f"{role.replace('_', ' ')} {number} does not exist for model {model!r}; "
                    f"versions: {sorted(known) or 'none'}",
                    model=model,
                    version=number,
                )
        if state.canary_version is None and state.canary_weight > 0:
            raise InvalidInput("a canary weight needs a canary version")
        if state.input_repair:
            # a repair naming another feature would add it to every request, and the schema
            # check would then refuse them all
            features = set(self.get_model(model).feature_names)
            named = set(state.input_repair) | {
                name for rule in state.input_repair.values()
                for name in rule.fill_coefficients or {}
            }
            unknown = sorted(named - features)
            if unknown:
                raise InvalidInput(
                    f"input_repair names {', '.join(map(repr, unknown))}, not features of "
                    f"model {model!r}; its features: {', '.join(sorted(features))}",
                    unknown=unknown,
                )
        values = state.model_dump()
        if not values["input_repair"]:
            del values["input_repair"]  # NULL: nothing mended (the column's default)
        for _attempt in range(5):
            try:
                with self._tx() as conn:
                    revision = 1 + (
                        conn.execute(
                            select(func.max(t.deployment_revisions.c.revision)).where(
                                t.deployment_revisions.c.model_id == model_id,
                                t.deployment_revisions.c.environment == environment,
                            )
                        ).scalar()
                        or 0
                    )
                    conn.execute(
                        insert(t.deployment_revisions).values(
                            model_id=model_id,
                            environment=environment,
                            revision=revision,
                            actor=actor,
                            reason=reason,
                            created_at=utcnow(),
                            **values,
                        )
                    )
                break
            except IntegrityError:
                continue
        else:
            raise Conflict(f"could not write a deployment revision for model {model!r}")
        deployment = self.get_deployment(model, environment)
        assert deployment is not None
        return deployment

    def get_deployment_revision(
        self, model: str, revision: int, environment: str = "production"
    ) -> Deployment:
        model_id = self.model_id(model)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.deployment_revisions).where(
                    t.deployment_revisions.c.model_id == model_id,
                    t.deployment_revisions.c.environment == environment,
                    t.deployment_revisions.c.revision == revision,
                )
            ).first()
        if row is None:
            raise NotFound(
                f"model {model!r} has no deployment revision {revision} in {environment!r}",
                model=model,
                revision=revision,
            )
        return self._deployment(model, row)

    def undo_deployment(
        self,
        model: str,
        to_revision: int,
        *,
        actor: str,
        reason: str = "",
        environment: str = "production",
    ) -> Deployment:
        """Restore revision ``to_revision`` by writing it again as a NEW revision."""
        old = self.get_deployment_revision(model, to_revision, environment)
        state = DeploymentState.model_validate(
            old.model_dump(include=set(DeploymentState.model_fields))
        )
        return self.set_deployment(
            model,
            state,
            actor=actor,
            reason=reason or f"undo to revision {to_revision}",
            environment=environment,
        )

    # ----------------------------------------------------------------------------- records

    def _record_params(
        self, rows: Iterable[Mapping[str, Any] | BaseModel]
    ) -> list[tuple[Any, ...]]:
        """Rows as database-ready tuples in ``RECORD_COLUMNS`` order: JSON already encoded,
        times in UTC (on SQLite as the text SQLAlchemy's DateTime writes). Doing it here, once,
        instead of in SQLAlchemy's per-value type processors is most of the speed of bulk
        capture."""
        sqlite = self.dialect == "sqlite"
        when = _sqlite_time if sqlite else as_utc
        now_value = when(utcnow())
        ids = self._model_ids
        params = []
        append = params.append
        for raw in rows:
            row = raw.model_dump() if isinstance(raw, BaseModel) else raw
            model_id = row.get("model_id")
            if model_id is None:
                model_id = ids.get(row["model"]) or self.model_id(row["model"])
            prediction = row.get("prediction_json")
            if prediction is None:
                prediction = _dumps_or_null(row.get("prediction"))
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

    def _batch_params(self, batch: RecordBatch) -> list[tuple[Any, ...]]:
        """A columnar batch as database tuples, built by Polars rather than row by row."""
        import polars as pl

        frame = batch.frame
        models = frame.get_column("model").unique().to_list()
        model_ids = {name: self.model_id(name) for name in models}
        received = utcnow()
        ts = pl.col("ts_utc") if self.dialect == "sqlite" else pl.col("ts_utc") + "+00:00"
        return frame.select(
            pl.col("id").cast(pl.String),
            pl.col("model").replace_strict(model_ids, return_dtype=pl.Int64).alias("model_id"),
            pl.col("version"),
            ts.alias("ts"),
            pl.lit(_sqlite_time(received) if self.dialect == "sqlite" else received).alias(
                "received_at"
            ),
            pl.col("features_json"),
            pl.col("prediction_json"),
            pl.col("scores_json"),
            pl.col("latency_ms").cast(pl.Float64),
            pl.col("error"),
            pl.col("served_by"),
        ).rows()

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

    def _insert_chunk(
        self, conn: Connection, rows: Sequence[Mapping[str, Any] | BaseModel]
    ) -> int:
        if isinstance(rows, RecordBatch):
            params = self._batch_params(rows)
        else:
            params = self._record_params(rows)
        if not params:
            return 0
        if self.dialect == "postgresql":
            return self._copy_records(conn, params)
        # straight to sqlite3's executemany: the values are already what the column holds
        marks = ", ".join("?" for _ in RECORD_COLUMNS)
        sql = (
            f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}) VALUES ({marks}) "
            "ON CONFLICT (model_id, id) DO NOTHING"
        )
        return int(conn.exec_driver_sql(sql, params).rowcount)

    def _copy_records(self, conn: Connection, params: list[tuple[Any, ...]]) -> int:
        """PostgreSQL: COPY into a session-local staging table, then one INSERT … SELECT …
        ON CONFLICT DO NOTHING, whose row count is exactly the number of new records."""
        names = ", ".join(RECORD_COLUMNS)
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS records_stage "
                "(LIKE records INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            with cur.copy(f"COPY records_stage ({names}) FROM STDIN") as copy:
                for row in params:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO records ({names}) SELECT {names} FROM records_stage "
                "ON CONFLICT (model_id, id) DO NOTHING"
            )
            inserted = cur.rowcount
            cur.execute("TRUNCATE records_stage")
        return int(inserted)

    def record_ids_present(self, ids: Iterable[str], model: str | None = None) -> set[str]:
        """The subset of ``ids`` already stored for ``model`` (for any model when None)."""
        ids = list(dict.fromkeys(ids))
        found: set[str] = set()
        model_id = None if model is None else self.model_id(model)
        with self.engine.connect() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = select(t.records.c.id).where(
                    t.records.c.id.in_(ids[start : start + _CHUNK])
                )
                if model_id is not None:
                    query = query.where(t.records.c.model_id == model_id)
                found.update(conn.execute(query).scalars())
        return found

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
    ) -> list[dict[str, Any]]:
        """Records of ``model`` in time order (ts, then id), each with its ``label`` or None.

        ``since`` is inclusive, ``until`` exclusive. ``after_id`` continues after that record
        in the same order, so a reader can page through a stream without gaps or repeats.
        ``answers_only`` reads only the id, time, features, prediction and label (what an
        incident's diagnosis uses): about half the time on 5,000 records, most of it spent
        decoding the other JSON and time columns.
        """
        model_id = self.model_id(model)
        r, f = t.records, t.feedback
        columns = [r.c.id, r.c.ts, r.c.features, r.c.prediction, f.c.label]
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
        r, f = t.records, t.feedback
        # On SQLite the JSON and time columns are read as their stored text and decoded below
        # in one pass (``json.loads``, ``datetime.fromisoformat``): the same values as
        # SQLAlchemy's per-value result processors at a third of the cost, and a window read
        # is most of the agent's pass over a fleet (docs/benchmarks.md, "A fleet")
        raw = self.dialect == "sqlite"
        coded = (r.c.ts, r.c.received_at, r.c.features, r.c.prediction, r.c.scores, f.c.label)
        ts, received, features, prediction, scores, label = (
            [type_coerce(c, Text).label(c.name) for c in coded] if raw else coded
        )
        query = (
            select(
                r.c.id, r.c.version, ts, received, features, prediction,
                scores, r.c.latency_ms, r.c.error, r.c.served_by, label,
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
        with self.engine.connect() as conn:
            result = conn.execute(query)
            if raw:
                return _decoded_records(result.all())
            rows = [dict(row._mapping) for row in result]
        for row in rows:
            row["timestamp"] = as_utc(row.pop("ts"))
            row["received_at"] = as_utc(row["received_at"])
        return rows

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
        if params:
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

    # ----------------------------------------------------------------------------- events

    def add_event(
        self, model: str | None, kind: str, actor: str, details: Mapping[str, Any] | None = None
    ) -> int:
        """Append an event (deploy, rollback, config …) to a model timeline, or the global one."""
        model_id = None if model is None else self.model_id(model)
        with self._tx() as conn:
            return int(
                conn.execute(
                    insert(t.events).values(
                        model_id=model_id,
                        ts=utcnow(),
                        kind=kind,
                        actor=actor,
                        details=json.loads(canonical_json(dict(details or {}))),
                    )
                ).inserted_primary_key[0]
            )

    def events(
        self,
        model: str | None = None,
        limit: int | None = 100,
        *,
        kinds: Sequence[str] | None = None,
        since: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Events newest first: of one model, or of every model when ``model`` is None."""
        e = t.events
        query = select(
            e.c.id, e.c.ts, e.c.kind, e.c.actor, e.c.details, t.models.c.name
        ).select_from(e.outerjoin(t.models, t.models.c.id == e.c.model_id))
        if model is not None:
            query = query.where(e.c.model_id == self.model_id(model))
        if kinds:
            query = query.where(e.c.kind.in_(list(kinds)))
        if since is not None:
            query = query.where(e.c.ts >= as_utc(since))
        query = query.order_by(e.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [
                {
                    "id": row.id,
                    "model": row.name,
                    "ts": as_utc(row.ts),
                    "kind": row.kind,
                    "actor": row.actor,
                    "details": row.details,
                }
                for row in conn.execute(query)
            ]

    # ----------------------------------------------------------------------------- audit

    @staticmethod
    def _audit_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
        payload = canonical_json(
            {
                "ts": as_utc(entry["ts"]).isoformat(),
                "actor": entry["actor"],
                "action": entry["action"],
                "target": entry["target"],
                "details": entry["details"],
            }
        )
        return hashlib.sha256((prev_hash + payload).encode()).hexdigest()

    def audit(
        self, actor: str, action: str, target: str = "", details: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Append an entry to the audit log, chained to the previous one by its sha256 hash."""
        entry = {
            "ts": utcnow(),
            "actor": actor,
            "action": action,
            "target": target,
            "details": json.loads(canonical_json(dict(details or {}))),
        }
        with self._audit_lock, self._tx() as conn:
            if self.dialect == "postgresql":
                # serialise writers of every process on the chain's tail
                conn.execute(text("SELECT pg_advisory_xact_lock(7157001)"))
            prev = conn.execute(
                select(t.audit_log.c.hash).order_by(t.audit_log.c.id.desc()).limit(1)
            ).scalar()
            entry["prev_hash"] = prev or GENESIS_HASH
            entry["hash"] = self._audit_hash(entry["prev_hash"], entry)
            entry["id"] = conn.execute(
                insert(t.audit_log).values(**{k: v for k, v in entry.items() if k != "id"})
            ).inserted_primary_key[0]
        return entry

    def audit_entries(
        self,
        *,
        limit: int | None = 100,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
    ) -> list[dict[str, Any]]:
        """Audit entries newest first, optionally filtered."""
        a = t.audit_log
        query = select(a)
        if actor is not None:
            query = query.where(a.c.actor == actor)
        if action is not None:
            query = query.where(a.c.action == action)
        if target is not None:
            query = query.where(a.c.target == target)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(a.c.id.desc()).limit(limit))
            return [{**row._mapping, "ts": as_utc(row.ts)} for row in rows]

    def verify_audit(self) -> tuple[bool, int | None]:
        """Recompute the hash chain; returns (True, None) or (False, id of the first bad entry)."""
        prev = GENESIS_HASH
        with self.engine.connect() as conn:
            for row in conn.execute(select(t.audit_log).order_by(t.audit_log.c.id)):
                entry = row._mapping
                if entry["prev_hash"] != prev or self._audit_hash(prev, entry) != entry["hash"]:
                    return False, int(entry["id"])
                prev = entry["hash"]
        return True, None

    # ----------------------------------------------------------------------------- tokens

    def create_token(self, name: str, role: Role | str, actor: str = "system") -> str:
        """Create an API token and return it in plain text (only its sha256 is stored)."""
        role = Role(role)
        if not name:
            raise InvalidInput("a token needs a name")
        token = "mlw_" + secrets.token_urlsafe(32)
        values = {"token_hash": hash_token(token), "role": role.value, "created_at": utcnow()}
        with self._tx() as conn:
            existing = conn.execute(
                select(t.api_tokens.c.revoked).where(t.api_tokens.c.name == name)
            ).first()
            if existing is not None and not existing.revoked:
                raise Conflict(f"a token named {name!r} already exists; revoke it first", name=name)
            if existing is not None:
                conn.execute(
                    update(t.api_tokens)
                    .where(t.api_tokens.c.name == name)
                    .values(revoked=False, **values)
                )
            else:
                conn.execute(insert(t.api_tokens).values(name=name, revoked=False, **values))
        self.audit(actor, "token.create", name, {"role": role.value})
        return token

    def ensure_admin_token(self, name: str, token: str) -> None:
        """Make ``token`` a valid admin token named ``name`` (the settings' bootstrap token,
        chosen by the operator rather than drawn at random like ``create_token``'s)."""
        if self.authenticate(token) is not None:
            return
        with self._tx() as conn:
            conn.execute(
                insert(t.api_tokens).values(
                    name=f"{name}-{hash_token(token)[:8]}",
                    token_hash=hash_token(token),
                    role=Role.ADMIN.value,
                    created_at=utcnow(),
                    revoked=False,
                )
            )
        self.audit("system", "token.create", name, {"role": Role.ADMIN.value, "bootstrap": True})

    def authenticate(self, token: str) -> tuple[str, Role] | None:
        """The (name, role) of a valid, unrevoked token, else None."""
        if not token:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.api_tokens.c.name, t.api_tokens.c.role).where(
                    t.api_tokens.c.token_hash == hash_token(token),
                    t.api_tokens.c.revoked.is_(False),
                )
            ).first()
        return None if row is None else (row.name, Role(row.role))

    def revoke_token(self, name: str, actor: str = "system") -> None:
        with self._tx() as conn:
            changed = conn.execute(
                update(t.api_tokens)
                .where(t.api_tokens.c.name == name, t.api_tokens.c.revoked.is_(False))
                .values(revoked=True)
            ).rowcount
        if not changed:
            raise NotFound(f"no active token named {name!r}", name=name)
        self.audit(actor, "token.revoke", name, {})

    def list_tokens(self) -> list[dict[str, Any]]:
        """Names, roles and state of every token (never the token itself)."""
        a = t.api_tokens
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(a.c.name, a.c.role, a.c.created_at, a.c.revoked).order_by(a.c.name)
            )
            return [{**row._mapping, "created_at": as_utc(row.created_at)} for row in rows]


__all__ = ["SERVED_BY", "Store", "VersionInfo", "canonical_json"]
