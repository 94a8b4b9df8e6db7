"""Incidents, actions and approvals come back from the store typed: their states are
``domain`` enums that move only along each aggregate's ``TRANSITIONS``, and the rules of the
approvals queue (who answers, with what reason, until when) are the store's. Listing actions
or approvals is one query, whatever the number of rows (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from mlwarden.domain import (
    ActionKind,
    ActionState,
    ApprovalState,
    FeatureSpec,
    IncidentState,
    ModelSpec,
    Role,
    Task,
)
from mlwarden.errors import Conflict, Forbidden, InvalidInput, NotFound
from mlwarden.store import approvals as approvals_module
from mlwarden.store import incidents as incidents_module
from mlwarden.store import journal as journal_module
from mlwarden.store.approvals import Answer, Approvals, check_answer, overdue
from mlwarden.store.incidents import AgentRepo, IllegalTransition
from mlwarden.store.journal import ActionJournal
from mlwarden.store.repository import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _spec(name: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        task=Task.CLASSIFICATION,
        features=[FeatureSpec(name="x")],
        target="y",
        positive_class=1,
    )


@contextmanager
def _queries(store: Store) -> Iterator[list[str]]:
    """The SELECTs the store sends while the block runs."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(store.engine, "before_cursor_execute", count)


@pytest.mark.parametrize(
    ("module", "enum"),
    [
        (incidents_module, IncidentState),
        (journal_module, ActionState),
        (approvals_module, ApprovalState),
    ],
)
def test_each_aggregates_transitions_are_written_in_its_state_enum(module: Any, enum: Any) -> None:
    transitions = module.TRANSITIONS
    assert set(transitions) == set(enum)
    for state, targets in transitions.items():
        assert isinstance(state, enum) and all(isinstance(t, enum) for t in targets)


def test_rows_come_back_with_their_states_as_enums(store: Store) -> None:
    store.create_model(_spec("churn"))
    repo, journal, approvals = AgentRepo(store), ActionJournal(store), Approvals(store)
    incident_id = repo.create_incident("churn", 3, {}, "drift")
    action_id = journal.create("churn", ActionKind.ALERT, incident_id=incident_id)
    approval_id = approvals.request(
        "churn", ActionKind.ROLLBACK, {}, expiry_minutes=60, incident_id=incident_id
    )

    incident = repo.get_incident(incident_id)
    assert incident["state"] is IncidentState.OPEN and incident["state"] == "open"
    assert [i["state"] for i in repo.list_incidents("churn")] == [IncidentState.OPEN]
    action = journal.get(action_id)
    assert (action["state"], action["kind"], action["model"]) == (
        ActionState.PENDING,
        ActionKind.ALERT,
        "churn",
    )
    assert type(action["state"]) is ActionState
    approval = approvals.get(approval_id)
    assert type(approval["state"]) is ApprovalState and approval["action"] is ActionKind.ROLLBACK

    repo.update_incident(incident_id, state=IncidentState.RESOLVED)
    with pytest.raises(IllegalTransition):
        repo.update_incident(incident_id, state=IncidentState.ACTING)


def test_an_action_moves_only_along_the_journals_transitions(store: Store) -> None:
    store.create_model(_spec("churn"))
    journal = ActionJournal(store)
    action_id = journal.create("churn", ActionKind.ROLLBACK)
    with pytest.raises(Conflict, match="is pending; expected one of done"):
        journal.mark_undone(action_id, None)
    journal.start(action_id, 1)
    journal.start(action_id, 2)  # resumed: the first revision before stays
    journal.finish(action_id, 3)
    with pytest.raises(Conflict):
        journal.fail(action_id, "too late")
    journal.mark_undone(action_id, 4)
    row = journal.get(action_id)
    assert (row["state"], row["before_revision"], row["attempts"]) == (ActionState.UNDONE, 1, 2)
    assert journal_module.coming_from(ActionState.UNDONE) == (ActionState.DONE,)


def test_listing_actions_and_approvals_is_one_query_with_the_same_rows_as_get(
    store: Store,
) -> None:
    for name in ("churn", "fraud", "credit"):
        store.create_model(_spec(name))
    journal, approvals = ActionJournal(store), Approvals(store)
    for n in range(12):
        model = ("churn", "fraud", "credit")[n % 3]
        journal.create(model, ActionKind.ALERT, {"n": n})
        approvals.request(model, ActionKind.ROLLBACK, {"n": n}, expiry_minutes=60)
    approvals.expire()  # nothing overdue: listing below marks nothing

    with _queries(store) as sent:
        actions = journal.list()
    assert len(sent) == 1 and len(actions) == 12
    with _queries(store) as sent:
        listed = approvals.list()
    # the expiry check reads the pending requests' ids and expiry, then one query lists them
    assert len(sent) == 2 and len(listed) == 12
    with _queries(store) as sent:
        in_flight = journal.in_flight()
    assert len(sent) == 1 and [a["id"] for a in in_flight] == sorted(a["id"] for a in actions)

    assert actions == [journal.get(a["id"]) for a in actions]
    assert listed == [approvals.get(a["id"]) for a in listed]
    assert [a["model"] for a in actions[:3]] == ["credit", "fraud", "churn"]  # newest first
    assert [a["id"] for a in journal.list(model="fraud")] == [
        a["id"] for a in actions if a["model"] == "fraud"
    ]
    assert approvals.list(state="approved") == []
    with pytest.raises(InvalidInput, match=r"no approval state 'approve': one of pending, "):
        approvals.list(state="approve")


def test_who_may_answer_with_what_reason_and_until_when_is_the_stores_rule(store: Store) -> None:
    store.create_model(_spec("churn"))
    approvals = Approvals(store)
    now = datetime.now(UTC)
    first = approvals.request("churn", ActionKind.RETRAIN, {}, expiry_minutes=30, now=now)

    with pytest.raises(Forbidden, match="needs the operator role; vic is viewer"):
        approvals.answer(first, "approve", actor="vic", role=Role.VIEWER, reason="fine")
    for blank in ("", "   ", None, 3):
        with pytest.raises(InvalidInput, match="'reason' is required"):
            approvals.answer(first, "approve", actor="ann", role=Role.OPERATOR, reason=blank)
    with pytest.raises(InvalidInput, match="at most 2000"):
        check_answer("ann", Role.ADMIN, "x" * 2001)
    with pytest.raises(InvalidInput, match="'decision' must be 'approve' or 'reject'"):
        approvals.answer(first, "maybe", actor="ann", role=Role.OPERATOR, reason="why not")
    with pytest.raises(NotFound):
        approvals.answer(first + 99, "reject", actor="ann", role=Role.OPERATOR, reason="no")
    with pytest.raises(InvalidInput, match="expiry must be positive"):
        approvals.request("churn", ActionKind.RETRAIN, {}, expiry_minutes=0)
    assert approvals.get(first)["state"] is ApprovalState.PENDING  # nothing above moved it

    # an admin may answer too; the answer's state is the verb's
    rejected = approvals.answer(first, Answer.REJECT, actor="root", role=Role.ADMIN, reason="no")
    assert (rejected["state"], rejected["decided_by"]) == (ApprovalState.REJECTED, "root")
    with pytest.raises(Conflict, match="is rejected, not pending"):
        approvals.approve(first, actor="ann", role=Role.OPERATOR, reason="changed my mind")

    # overdue from the very instant of its expiry: no longer answerable, marked expired
    second = approvals.request(
        "churn", ActionKind.RETRAIN, {}, expiry_minutes=1, now=now - timedelta(minutes=1)
    )
    expires_at = approvals.get(second)["expires_at"]
    assert overdue(expires_at, expires_at) and not overdue(expires_at, T0)
    with pytest.raises(Conflict, match="is expired, not pending"):
        approvals.answer(second, "approve", actor="ann", role=Role.OPERATOR, reason="ok")
    assert approvals.get(second)["decided_by"] == "system"


def test_approving_journals_the_action_and_moves_the_incident_to_acting(store: Store) -> None:
    store.create_model(_spec("churn"))
    repo, approvals = AgentRepo(store), Approvals(store)
    incident_id = repo.create_incident("churn", 1, {}, "a drop")
    approval_id = approvals.request(
        "churn", ActionKind.ROLLBACK, {"to_version": 1}, expiry_minutes=60, incident_id=incident_id
    )
    assert approvals.pending_for_incident(incident_id) == approvals.get(approval_id)
    approved = approvals.answer(
        approval_id, "approve", actor="ann", role=Role.OPERATOR, reason="the old one was fine"
    )
    assert approved["state"] is ApprovalState.APPROVED
    action = ActionJournal(store).get(approved["action_id"])
    assert (action["state"], action["approval_id"], action["params"]) == (
        ActionState.PENDING,
        approval_id,
        {"to_version": 1},
    )
    assert repo.get_incident(incident_id)["state"] is IncidentState.ACTING
    assert approvals.pending_for_incident(incident_id) is None
