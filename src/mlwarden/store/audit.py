"""The audit aggregate: model events, the hash-chained audit log and API tokens."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    insert,
    select,
    text,
    update,
)

from mlwarden.clock import as_utc, utcnow
from mlwarden.domain import Role
from mlwarden.errors import Conflict, InvalidInput, NotFound
from mlwarden.store import tables as t
from mlwarden.store.base import (
    GENESIS_HASH,
    StoreBase,
    canonical_json,
    hash_token,
    inserted_id,
)


class AuditTables(StoreBase):
    """The ``Store``'s queries on events, the audit chain and tokens."""

    # ----------------------------------------------------------------------------- events

    def add_event(
        self, model: str | None, kind: str, actor: str, details: Mapping[str, Any] | None = None
    ) -> int:
        """Append an event (deploy, rollback, config …) to a model timeline, or the global one."""
        model_id = None if model is None else self.model_id(model)
        with self._tx() as conn:
            return inserted_id(
                conn.execute(
                    insert(t.events).values(
                        model_id=model_id,
                        ts=utcnow(),
                        kind=kind,
                        actor=actor,
                        details=json.loads(canonical_json(dict(details or {}))),
                    )
                )
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
    def _audit_hash(prev_hash: str, entry: Mapping[Any, Any]) -> str:
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
            entry["id"] = inserted_id(
                conn.execute(
                    insert(t.audit_log).values(**{k: v for k, v in entry.items() if k != "id"})
                )
            )
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
