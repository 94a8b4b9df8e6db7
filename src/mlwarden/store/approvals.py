"""The approvals aggregate: remedies that wait for an operator, with expiry and audit entries.

Approving journals the action (state ``pending``), so the agent's next pass runs it through the
same crash-safe path as every other action; rejecting or letting it expire closes the request.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from mlwarden.clock import as_utc, utcnow
from mlwarden.domain import ActionKind, Role
from mlwarden.errors import Conflict, Forbidden, InvalidInput, NotFound
from mlwarden.store import agent_tables as at
from mlwarden.store.base import as_json, inserted_id, plain_row
from mlwarden.store.incidents import AgentRepo, can_move
from mlwarden.store.journal import ActionJournal
from mlwarden.store.repository import Store


class Approvals:
    """Requests for approval stored in the ``approvals`` table."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine
        self.repo = AgentRepo(store)
        self.journal = ActionJournal(store)

    def request(
        self,
        model: str,
        action: ActionKind,
        params: Mapping[str, Any],
        *,
        expiry_minutes: float,
        decision_id: int | None = None,
        incident_id: int | None = None,
        actor: str = "agent",
        now: datetime | None = None,
    ) -> int:
        """Queue ``action`` for approval; it expires after ``expiry_minutes``."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            approval_id = inserted_id(
                conn.execute(
                    insert(at.approvals).values(
                        model_id=self.store.model_id(model),
                        decision_id=decision_id,
                        incident_id=incident_id,
                        action=ActionKind(action).value,
                        params=as_json(dict(params)),
                        state="pending",
                        requested_at=now,
                        expires_at=now + timedelta(minutes=expiry_minutes),
                    )
                )
            )
        self.store.audit(
            actor,
            "approval.request",
            f"{model}/approval/{approval_id}",
            {"action": ActionKind(action).value, "incident": incident_id},
        )
        return approval_id

    def get(self, approval_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(at.approvals).where(at.approvals.c.id == approval_id)).first()
        if row is None:
            raise NotFound(f"no approval {approval_id}", approval=approval_id)
        out = plain_row(row)
        out["model"] = self.store.model_name(out["model_id"])
        return out

    def list(self, state: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        self.expire()
        a = at.approvals
        query = select(a.c.id)
        if state is not None:
            query = query.where(a.c.state == state)
        if model is not None:
            query = query.where(a.c.model_id == self.store.model_id(model))
        with self.engine.connect() as conn:
            ids = list(conn.execute(query.order_by(a.c.id.desc())).scalars())
        return [self.get(i) for i in ids]

    def pending_for_incident(self, incident_id: int) -> dict[str, Any] | None:
        a = at.approvals
        with self.engine.connect() as conn:
            found = conn.execute(
                select(a.c.id).where(a.c.incident_id == incident_id, a.c.state == "pending")
            ).scalar()
        return None if found is None else self.get(found)

    def expire(self, now: datetime | None = None) -> builtins.list[int]:
        """Mark pending requests past their expiry as ``expired``; returns their ids."""
        now = now or utcnow()
        a = at.approvals
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(a.c.id, a.c.expires_at, a.c.incident_id).where(a.c.state == "pending")
            ).all()
        expired = [r for r in rows if as_utc(r.expires_at) <= now]
        for row in expired:
            with self.engine.begin() as conn:
                changed = conn.execute(
                    update(a)
                    .where(a.c.id == row.id, a.c.state == "pending")
                    .values(state="expired", decided_at=now, decided_by="system", reason="expired")
                ).rowcount
            if changed:
                self.store.audit("system", "approval.expire", f"approval/{row.id}", {})
                if row.incident_id is not None:
                    self.repo.update_incident(
                        row.incident_id,
                        event="approval_expired",
                        text=f"approval {row.id} expired without an answer",
                    )
        return [r.id for r in expired]

    def _decide(self, approval_id: int, state: str, actor: str, role: Role, reason: str) -> None:
        if not Role(role).allows(Role.OPERATOR):
            raise Forbidden(f"approving or rejecting needs the operator role; {actor} is {role}")
        if not reason or not reason.strip():
            raise InvalidInput("a reason is required to approve or reject")
        self.expire()
        a = at.approvals
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(a)
                .where(a.c.id == approval_id, a.c.state == "pending")
                .values(state=state, decided_by=actor, decided_at=utcnow(), reason=reason)
            ).rowcount
        if not changed:
            current = self.get(approval_id)["state"]
            raise Conflict(f"approval {approval_id} is {current}, not pending", state=current)

    def approve(self, approval_id: int, *, actor: str, role: Role, reason: str) -> dict[str, Any]:
        """Approve a pending request and journal its action; returns the approval with
        ``action_id``."""
        self._decide(approval_id, "approved", actor, role, reason)
        approval = self.get(approval_id)
        action_id = self.journal.create(
            approval["model"],
            ActionKind(approval["action"]),
            approval["params"],
            actor=actor,
            incident_id=approval["incident_id"],
            decision_id=approval["decision_id"],
            approval_id=approval_id,
        )
        self.store.audit(
            actor,
            "approval.approve",
            f"{approval['model']}/approval/{approval_id}",
            {"reason": reason, "action_id": action_id},
        )
        if approval["incident_id"] is not None:
            incident = self.repo.get_incident(approval["incident_id"])
            # an incident closed meanwhile keeps its state (the action still runs, journaled)
            moved: dict[str, Any] = (
                {"state": "acting"} if can_move(incident["state"], "acting") else {}
            )
            self.repo.update_incident(
                approval["incident_id"],
                event="approved",
                **moved,
                text=f"{actor} approved {approval['action']}: {reason}",
            )
        return {**approval, "action_id": action_id}

    def withdraw(self, approval_id: int, *, actor: str, reason: str) -> None:
        """The agent takes back a pending request whose grounds changed (say, a new version
        went live): it can no longer be approved; no-op when it is no longer pending."""
        a = at.approvals
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(a)
                .where(a.c.id == approval_id, a.c.state == "pending")
                .values(state="withdrawn", decided_by=actor, decided_at=utcnow(), reason=reason)
            ).rowcount
        if changed:
            approval = self.get(approval_id)
            self.store.audit(
                actor,
                "approval.withdraw",
                f"{approval['model']}/approval/{approval_id}",
                {"reason": reason},
            )

    def reject(self, approval_id: int, *, actor: str, role: Role, reason: str) -> dict[str, Any]:
        self._decide(approval_id, "rejected", actor, role, reason)
        approval = self.get(approval_id)
        self.store.audit(
            actor,
            "approval.reject",
            f"{approval['model']}/approval/{approval_id}",
            {"reason": reason},
        )
        if approval["incident_id"] is not None:
            self.repo.update_incident(
                approval["incident_id"],
                event="rejected",
                text=f"{actor} rejected {approval['action']}: {reason}",
            )
        return approval


__all__ = ["Approvals"]
