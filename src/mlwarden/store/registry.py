"""The registry aggregate: models, their versions (artifacts, reference samples, health),
deletion, and deployments with their revisions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, field_serializer
from sqlalchemy import (
    Connection,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from mlwarden.clock import as_utc, utcnow
from mlwarden.domain import Deployment, DeploymentState, ModelSpec, mask_endpoint
from mlwarden.errors import Conflict, InvalidInput, NotFound
from mlwarden.store import tables as t
from mlwarden.store.audit import AuditTables
from mlwarden.store.base import (
    canonical_json,
    inserted_id,
)

VersionKind = Literal["sklearn", "remote"]
Health = Literal["healthy", "unhealthy", "unknown"]


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


class RegistryTables(AuditTables):
    """The ``Store``'s queries on models, versions and deployments (changes are audited)."""

    # ----------------------------------------------------------------------------- models

    def create_model(self, spec: ModelSpec, actor: str = "system") -> None:
        """Register a model; ``Conflict`` when the name is taken."""
        now = utcnow()
        try:
            with self._tx() as conn:
                model_id = inserted_id(
                    conn.execute(
                        insert(t.models).values(
                            name=spec.name,
                            task=spec.task.value,
                            spec=spec.model_dump(mode="json"),
                            monitoring=True,
                            created_at=now,
                        )
                    )
                )
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
        row = self._version_row(model, number, (t.versions.c.reference_sample,))
        sample: list[dict[str, Any]] | None = row.reference_sample
        return sample

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
            select(d)
            .join(
                newest,
                (d.c.environment == newest.c.environment) & (d.c.revision == newest.c.revision),
            )
            .where(d.c.model_id == model_id)
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
                name
                for rule in state.input_repair.values()
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
