"""Each caller of the assistant has their own conversation (issue 14): two operators working at
the same time are audited under their own names, and "it" is each one's own last model."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlwarden.assistant.executor import Conversations
from mlwarden.clock import utcnow
from mlwarden.server import create_app
from mlwarden.settings import Settings
from mlwarden.store import Store
from mlwarden.store.assistant import AssistantExchange

ROUNDS = 6


class User:
    def __init__(self, client: TestClient, store: Store, name: str) -> None:
        self.name = name
        self.client = client
        self.headers = {"Authorization": f"Bearer {store.create_token(name, 'operator')}"}

    def ask(self, text: str, **flags: Any) -> dict[str, Any]:
        response = self.client.post(
            "/v1/assistant", json={"text": text, **flags}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", auth=True, write_flush_interval_s=0.05)
    with TestClient(create_app(settings, store)) as test_client:
        yield test_client


def test_two_users_interleaving_act_under_their_own_names_on_their_own_models(
    client: TestClient, store: Store
) -> None:
    alice, bob = User(client, store, "alice"), User(client, store, "bob")
    assert alice.ask("load the titanic example")["status"] == "done"
    for user in (alice, bob):
        trained = user.ask(
            "train a classifier on titanic predicting Survived with logistic regression "
            f"as {user.name}-model"
        )
        assert trained["status"] == "done", trained["message"]
    # bob trained last: a shared memory would make alice's "it" bob's model
    for user in (alice, bob):
        deployed = user.ask("deploy it to staging")
        assert deployed["status"] == "done", deployed["message"]
        assert deployed["understood"]["arguments"]["model"] == f"{user.name}-model"
    for user in (alice, bob):
        assert store.get_deployment(f"{user.name}-model", "staging").live_version == 1

    # now at the same time: every request of one user runs while the other's are running
    def deploy_again(user: User) -> list[str]:
        return [user.ask("deploy it to staging")["status"] for _ in range(ROUNDS)]

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(deploy_again, [alice, bob, alice, bob]))
    assert statuses == [["done"] * ROUNDS] * 4

    entries = [e for e in store.audit_entries(limit=None) if e["action"].startswith("deployment.")]
    assert len(entries) == 2 + 4 * ROUNDS
    assert {(e["target"], e["actor"]) for e in entries} == {
        ("alice-model", "alice"),
        ("bob-model", "bob"),
    }
    registered = {e["target"]: e["actor"] for e in store.audit_entries(action="model.register")}
    assert registered == {"alice-model": "alice", "bob-model": "bob"}


def test_a_new_user_it_is_nobody_elses_model(client: TestClient, store: Store) -> None:
    alice, carol = User(client, store, "alice"), User(client, store, "carol")
    assert alice.ask("load the titanic example")["status"] == "done"
    trained = alice.ask(
        "train a classifier on titanic predicting Survived with logistic regression"
    )
    assert trained["status"] == "done", trained["message"]
    asked = carol.ask("deploy it to staging")
    assert asked["status"] == "needs_input" and asked["result"]["missing"] == ["model"]
    understood = carol.ask("clean it", dry_run=True)
    assert understood["missing"] == ["dataset"]
    assert store.get_deployment("titanic-survived", "staging") is None
    assert alice.ask("deploy it to staging")["status"] == "done"


def test_conversations_are_kept_in_the_store_per_key_and_bounded(store: Store) -> None:
    """Two ``Conversations`` on one database are two server processes (or one, restarted):
    what one keeps, the other reads."""
    conversations, elsewhere = Conversations(store, limit=3), Conversations(store, limit=3)
    first = conversations.get("api:alice", "alice")
    first.last_model = "m"
    conversations.save(first)
    assert (elsewhere.get("api:alice", "alice").last_model, first.key) == ("m", "api:alice")
    assert conversations.get("api:bob", "bob").last_model is None
    for n in range(5):
        talk = conversations.get(f"api:u{n}", f"u{n}")
        talk.last_dataset = f"d{n}"
        conversations.save(talk)
    assert elsewhere.get("api:u4", "u4").last_dataset == "d4"
    assert conversations.get("api:alice", "alice").last_model is None  # dropped, started anew
    # a key reused by another actor (a token name given to someone else) starts afresh
    reused = conversations.get("api:u4", "mallory")
    assert (reused.actor, reused.last_dataset) == ("mallory", None)


def test_an_api_callers_it_survives_a_restart(store: Store, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", auth=True, write_flush_interval_s=0.05)
    token = store.create_token("alice", "operator")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings, store)) as before:
        for text in ("load the titanic example", "train a classifier on it predicting Survived"):
            reply = before.post("/v1/assistant", json={"text": text}, headers=headers)
            assert reply.json()["status"] == "done", reply.text
    with TestClient(create_app(settings, store)) as after:
        reply = after.post("/v1/assistant", json={"text": "deploy it to staging"}, headers=headers)
        assert reply.json()["status"] == "done", reply.text
    assert store.get_deployment("titanic-survived", "staging") is not None


def test_the_exchanges_kept_are_the_newest_of_each_conversation(store: Store) -> None:
    for n in range(7):
        exchange = AssistantExchange(utcnow(), f"command {n}", "done", f"answer {n}")
        store.add_assistant_exchange("ui:a", exchange, keep=5)
    store.add_assistant_exchange("ui:b", AssistantExchange(utcnow(), "b", "error", "no"), keep=5)
    kept = store.assistant_exchanges("ui:a", 50)
    assert [e.text for e in kept] == [f"command {n}" for n in range(2, 7)]  # oldest first
    assert [e.text for e in store.assistant_exchanges("ui:a", 2)] == ["command 5", "command 6"]
    store.forget_assistant_conversation("ui:a")
    assert store.assistant_exchanges("ui:a", 50) == []
    assert [e.status for e in store.assistant_exchanges("ui:b", 50)] == ["error"]
