"""The contract every registered remedy keeps, checked on each with the same real components: a
SQLite store, real scikit-learn versions trained on the bundled electricity data, real records.

A new action kind (one module in ``agent/remedies/``) is checked here unedited but for its
parameters in ``PARAMS``: it runs through the operations service, is journaled and audited,
declares what its verification checks, and its undo leaves the deployment as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from agent_helpers import MODEL, add_version, send_records, train

from mlwarden.agent.operations import deployments
from mlwarden.agent.operations.service import Operations
from mlwarden.agent.policy import load_policy_text
from mlwarden.agent.remedies.base import Remedy, VerifyTarget
from mlwarden.agent.remedies.registry import registered, remedy_for
from mlwarden.domain import ActionKind
from mlwarden.store.journal import ActionJournal
from mlwarden.store.repository import Store

# the parameters each kind runs with, from the fixture's versions: v1 (healthy, fallback),
# v2 (live), v3 (healthy, a candidate)
PARAMS: dict[ActionKind, Callable[[dict[str, int]], dict[str, Any]]] = {
    ActionKind.NONE: lambda v: {},
    ActionKind.ALERT: lambda v: {"title": "contract"},
    ActionKind.ROLLBACK: lambda v: {"to_version": v["v1"]},
    ActionKind.FALLBACK: lambda v: {"to_version": v["v1"]},
    ActionKind.DISABLE: lambda v: {},
    ActionKind.CANARY: lambda v: {"version": v["v3"], "weight": 0.2},
    ActionKind.SHADOW: lambda v: {"version": v["v3"]},
    ActionKind.PROMOTE: lambda v: {"version": v["v3"], "validated": True},
    ActionKind.REPAIR: lambda v: {"input_repair": {"nswprice": {"fill": 0.05}}},
    ActionKind.RETRAIN: lambda v: {},
}


def test_every_action_kind_has_one_registered_remedy_and_a_contract_case() -> None:
    remedies = registered()
    assert set(remedies) == set(ActionKind) == set(PARAMS)
    for kind, remedy in remedies.items():
        assert (
            isinstance(remedy, Remedy) and remedy.kind is kind and remedy_for(kind.value) is remedy
        )


@pytest.mark.parametrize("kind", sorted(ActionKind, key=lambda k: k.value), ids=str)
def test_a_remedy_runs_once_is_journaled_and_its_undo_leaves_the_deployment_as_before(
    kind: ActionKind, store: Store, deployed: dict[str, Any], elec: pd.DataFrame
) -> None:
    remedy = remedy_for(kind)
    assert isinstance(remedy.verifies, VerifyTarget) and remedy.phrase
    old = elec.iloc[:2000]
    candidate = add_version(store, train(old, min_samples_leaf=50), old, "healthy")
    versions = {**deployed, "v3": candidate}
    if kind is ActionKind.RETRAIN:
        send_records(store, elec.iloc[30000:31500], version=versions["v2"])
    before = store.get_deployment(MODEL)
    ops = Operations(store, actor="contract", policy=load_policy_text("defaults: {}"))
    journal = ActionJournal(store)
    action_id = journal.create(MODEL, kind, PARAMS[kind](versions), actor="contract")

    done = ops.run_action(action_id)
    assert done["state"] == "done", done["error"]
    assert done["before_revision"] == before.revision  # type: ignore[union-attr]
    assert ops.run_action(action_id) == done  # a second run is a no-op
    changes_routing = remedy.verifies is not VerifyTarget.NOTHING
    assert (done["after_revision"] != done["before_revision"]) is changes_routing

    undone = ops.undo_action(action_id)
    assert undone["state"] == "undone"
    after = store.get_deployment(MODEL)
    assert deployments.state_of(after) == deployments.state_of(before)
    target = f"{MODEL}/action/{action_id}"
    audited = [e["action"] for e in store.audit_entries(limit=200) if e["target"] == target]
    assert audited.count("action.done") == 1 and audited.count("action.undo") == 1
    assert store.verify_audit() == (True, None)


def test_what_a_remedy_class_declares_is_what_the_guards_and_the_evidence_ask() -> None:
    """The budget and confidence guards and the evidence read the remedy classes, not lists:
    alert and none change nothing; the four remedies scored on stored records are weighed."""
    from mlwarden.agent.remedies.registry import remedial_kinds, weighed_kinds

    assert ActionKind.ALERT not in remedial_kinds()
    assert ActionKind.NONE not in remedial_kinds()
    assert {ActionKind.ROLLBACK, ActionKind.RETRAIN, ActionKind.REPAIR} <= remedial_kinds()
    assert weighed_kinds() == {
        ActionKind.FALLBACK,
        ActionKind.ROLLBACK,
        ActionKind.DISABLE,
        ActionKind.REPAIR,
    }
