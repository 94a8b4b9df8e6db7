"""The approvals aggregate: remedies that wait for an operator, with expiry and audit entries.

Approving journals the action (state ``pending``), so the agent's next pass runs it through the
same crash-safe path as every other action; rejecting or letting it expire closes the request.

The rules of the queue are here, next to its data, and nowhere else: who may answer
(``ANSWER_ROLE``: an operator or an admin), what an answer is (``Answer``: approve or reject,
with a reason that is not blank, ``check_answer``), when a request is overdue (``overdue``: at
its ``expires_at``, set from the policy's ``approval.expiry_minutes`` when it is queued) and where
a state may go (``TRANSITIONS``). The API, the dashboard, the command line and
``agent.operations`` hand what they were given to ``Approvals``; none of them checks it again.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypedDict, cast

from sqlalchemy import insert, select, update

from mlwarden.clock import as_utc, utcnow
from mlwarden.domain import ActionKind, ApprovalState, IncidentState, Role
from mlwarden.errors import Conflict, Forbidden, InvalidInput, NotFound
from mlwarden.store import agent_tables as at
from mlwarden.store.base import as_json, inserted_id, plain_row, with_model_name
from mlwarden.store.incidents import AgentRepo, can_move
from mlwarden.store.journal import ActionJournal
from mlwarden.store.repository import Store

_S = ApprovalState
# pending is the only state that moves; every answer, expiry or withdrawal is final
TRANSITIONS: Mapping[ApprovalState, frozenset[ApprovalState]] = {
    _S.PENDING: frozenset({_S.APPROVED, _S.REJECTED, _S.EXPIRED, _S.WITHDRAWN}),
    _S.APPROVED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
    _S.WITHDRAWN: frozenset(),
}

# who may approve or reject (an admin too: roles are ordered, ``Role.allows``)
ANSWER_ROLE = Role.OPERATOR
# an answer's reason is audited and shown on the incident's timeline; this much is kept
MAX_REASON_CHARS = 2000


class Answer(StrEnum):
    """What a person answers to a request: the verb, and the state it leaves the request in."""

    APPROVE = "approve"
    REJECT = "reject"

    @property
    def state(self) -> ApprovalState:
        return _S.APPROVED if self is Answer.APPROVE else _S.REJECTED

    @classmethod
    def parse(cls, value: object) -> Answer:
        """``value`` as an answer; ``InvalidInput`` naming what is allowed otherwise.

        >>> Answer.parse("reject").state.value
        'rejected'
        """
        for answer in cls:
            if value == answer.value:
                return answer
        raise InvalidInput(
            f"'decision' must be 'approve' or 'reject', not {value!r}", field="decision"
        )


def check_answer(actor: str, role: Role | str, reason: object) -> str:
    """The reason of an answer by ``actor`` in ``role``, as given; ``Forbidden`` when the role
    may not answer, ``InvalidInput`` when the reason is blank, not text, or too long.

    >>> check_answer("ann", "admin", "the retrain looks right")
    'the retrain looks right'
    >>> check_answer("vic", "viewer", "looks right")
    Traceback (most recent call last):
    mlwarden.errors.Forbidden: approving or rejecting needs the operator role; vic is viewer
    """
    if not Role(role).allows(ANSWER_ROLE):
        raise Forbidden(
            f"approving or rejecting needs the {ANSWER_ROLE.value} role; {actor} is {Role(role)}"
        )
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("'reason' is required to approve or reject: say why", field="reason")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(
            f"'reason' is {len(reason)} characters; at most {MAX_REASON_CHARS}", field="reason"
        )
    return reason


def overdue(expires_at: datetime, now: datetime) -> bool:
    """True once a pending request's ``expires_at`` has come: it can no longer be answered, and
    ``Approvals.expire`` marks it expired (the dashboard stops listing it as waiting at once)."""
    return as_utc(expires_at) <= now


class ApprovalRow(TypedDict):
    """A request for approval as the store returns it: its columns, ``action`` and ``state`` as
    their enums (``str`` both: ``row["state"] == "pending"`` holds), and ``model`` by name."""

    id: int
    model_id: int
    model: str
    decision_id: int | None
    incident_id: int | None
    action: ActionKind
    params: dict[str, Any]
    state: ApprovalState
    requested_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None


class ApprovedRow(ApprovalRow):
    """An approval just approved, with the id of the action it journaled."""

    action_id: int


def _approval(row: Any) -> ApprovalRow:
    out = plain_row(row)
    out["action"] = ActionKind(out["action"])
    out["state"] = ApprovalState(out["state"])
    return cast(ApprovalRow, out)


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
        if not expiry_minutes > 0:
            raise InvalidInput(f"an approval's expiry must be positive, not {expiry_minutes}")
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
                        state=_S.PENDING,
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

    def get(self, approval_id: int) -> ApprovalRow:
        with self.engine.connect() as conn:
            row = conn.execute(
                with_model_name(select(at.approvals), at.approvals).where(
                    at.approvals.c.id == approval_id
                )
            ).first()
        if row is None:
            raise NotFound(f"no approval {approval_id}", approval=approval_id)
        return _approval(row)

    def list(self, state: str | None = None, model: str | None = None) -> list[ApprovalRow]:
        """Every request (in ``state``, of ``model``), newest first, overdue ones marked expired
        first: one query, the model's name joined in."""
        known = ", ".join(s.value for s in ApprovalState)
        if state is not None and state not in known.split(", "):
            raise InvalidInput(f"no approval state {state!r}: one of {known}", field="state")
        self.expire()
        a = at.approvals
        query = with_model_name(select(a), at.approvals)
        if state is not None:
            query = query.where(a.c.state == state)
        if model is not None:
            query = query.where(a.c.model_id == self.store.model_id(model))
        with self.engine.connect() as conn:
            return [_approval(r) for r in conn.execute(query.order_by(a.c.id.desc()))]

    def pending_for_incident(self, incident_id: int) -> ApprovalRow | None:
        a = at.approvals
        with self.engine.connect() as conn:
            found = conn.execute(
                with_model_name(select(a), at.approvals)
                .where(a.c.incident_id == incident_id, a.c.state == _S.PENDING)
                .order_by(a.c.id)
                .limit(1)
            ).first()
        return None if found is None else _approval(found)

    def expire(self, now: datetime | None = None) -> builtins.list[int]:
        """Mark pending requests past their expiry as ``expired``; returns their ids."""
        now = now or utcnow()
        a = at.approvals
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(a.c.id, a.c.expires_at, a.c.incident_id).where(a.c.state == _S.PENDING)
            ).all()
        expired = [r for r in rows if overdue(r.expires_at, now)]
        for row in expired:
            with self.engine.begin() as conn:
                changed = conn.execute(
                    update(a)
                    .where(a.c.id == row.id, a.c.state == _S.PENDING)
                    .values(state=_S.EXPIRED, decided_at=now, decided_by="system", reason="expired")
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

    def answer(
        self, approval_id: int, answer: Answer | object, *, actor: str, role: Role, reason: object
    ) -> ApprovalRow:
        """Approve or reject (``Answer.parse``): what the API, the dashboard and the command
        line call with what they were given; the rules are checked here."""
        why = check_answer(actor, role, reason)
        if Answer.parse(answer) is Answer.APPROVE:
            return self.approve(approval_id, actor=actor, role=role, reason=why)
        return self.reject(approval_id, actor=actor, role=role, reason=why)

    def _decide(
        self, approval_id: int, answer: Answer, actor: str, role: Role, reason: object
    ) -> str:
        """Move a pending request to ``answer``'s state; the reason as recorded."""
        why = check_answer(actor, role, reason)
        self.expire()
        a = at.approvals
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(a)
                .where(a.c.id == approval_id, a.c.state == _S.PENDING)
                .values(state=answer.state, decided_by=actor, decided_at=utcnow(), reason=why)
            ).rowcount
        if not changed:
            current = self.get(approval_id)["state"]
            raise Conflict(
                f"approval {approval_id} is {current.value}, not pending", state=current.value
            )
        return why

    def approve(self, approval_id: int, *, actor: str, role: Role, reason: str) -> ApprovedRow:
        """Approve a pending request and journal its action; returns the approval with
        ``action_id``."""
        reason = self._decide(approval_id, Answer.APPROVE, actor, role, reason)
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
            acting = IncidentState.ACTING
            moved: dict[str, Any] = {"state": acting} if can_move(incident["state"], acting) else {}
            self.repo.update_incident(
                approval["incident_id"],
                event="approved",
                **moved,
                text=f"{actor} approved {approval['action']}: {reason}",
            )
        return ApprovedRow(**approval, action_id=action_id)

    def withdraw(self, approval_id: int, *, actor: str, reason: str) -> None:
        """The agent takes back a pending request whose grounds changed (say, a new version
        went live): it can no longer be approved; no-op when it is no longer pending."""
        a = at.approvals
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(a)
                .where(a.c.id == approval_id, a.c.state == _S.PENDING)
                .values(state=_S.WITHDRAWN, decided_by=actor, decided_at=utcnow(), reason=reason)
            ).rowcount
        if changed:
            approval = self.get(approval_id)
            self.store.audit(
                actor,
                "approval.withdraw",
                f"{approval['model']}/approval/{approval_id}",
                {"reason": reason},
            )

    def reject(self, approval_id: int, *, actor: str, role: Role, reason: str) -> ApprovalRow:
        reason = self._decide(approval_id, Answer.REJECT, actor, role, reason)
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


__all__ = [
    "ANSWER_ROLE",
    "TRANSITIONS",
    "Answer",
    "ApprovalRow",
    "ApprovalState",
    "Approvals",
    "ApprovedRow",
    "check_answer",
    "overdue",
]
