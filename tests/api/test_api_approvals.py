"""The approvals API hands what it was given to the store, whose rules answer: the decision's
words, a reason, the role, the states a list may ask for (over HTTP, SQLite)."""

from __future__ import annotations

from pathlib import Path

from api_helpers import ELEC_SPEC, make_settings, role_headers
from fastapi.testclient import TestClient

from mlwarden.domain import ActionKind, ActionState, ApprovalState
from mlwarden.server.app import create_app
from mlwarden.store import Store
from mlwarden.store.approvals import Approvals
from mlwarden.store.journal import ActionJournal


def test_the_api_answers_approvals_by_the_stores_rules(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, auth=True)
    headers = role_headers(settings)
    store = Store(settings.resolved_database_url)
    try:
        with TestClient(create_app(settings, store)) as client:
            admin, operator, viewer = headers["admin"], headers["operator"], headers["viewer"]
            assert client.post("/v1/models", json=ELEC_SPEC, headers=admin).status_code == 201
            approvals = Approvals(store)
            first = approvals.request("elec", ActionKind.ROLLBACK, {}, expiry_minutes=60)
            second = approvals.request("elec", ActionKind.RETRAIN, {}, expiry_minutes=60)
            url = f"/v1/approvals/{first}"

            refused = client.post(url, json={"decision": "approve", "reason": "ok"}, headers=viewer)
            assert refused.status_code == 403
            for body, words in (
                ({"decision": "maybe", "reason": "hm"}, "'decision' must be 'approve' or 'reject'"),
                ({"decision": "approve", "reason": "  "}, "'reason' is required"),
                ({"decision": "approve"}, "'reason' is required"),
                ({"decision": "reject", "reason": "x" * 2001}, "at most 2000"),
            ):
                answer = client.post(url, json=body, headers=operator)
                assert answer.status_code == 422, answer.text
                assert words in answer.json()["error"]
            assert approvals.get(first)["state"] is ApprovalState.PENDING

            approved = client.post(
                url, json={"decision": "approve", "reason": "v1 served well"}, headers=operator
            )
            assert approved.status_code == 200, approved.text
            assert approved.json()["state"] == "approved"
            action = ActionJournal(store).get(approved.json()["action_id"])
            assert (action["state"], action["approval_id"]) == (ActionState.PENDING, first)
            again = client.post(url, json={"decision": "reject", "reason": "late"}, headers=admin)
            assert again.status_code == 409 and "is approved, not pending" in again.json()["error"]

            listed = client.get("/v1/approvals", params={"state": "pending"}, headers=viewer)
            assert [a["id"] for a in listed.json()["approvals"]] == [second]
            assert listed.json()["approvals"][0]["model"] == "elec"
            bogus = client.get("/v1/approvals", params={"state": "open"}, headers=viewer)
            assert bogus.status_code == 422
            assert "one of pending, approved, rejected, expired, withdrawn" in bogus.json()["error"]
    finally:
        store.close()
