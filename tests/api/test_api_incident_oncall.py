"""On-call people acknowledge, assign and annotate an incident over HTTP: operators only, each
audited with the token's name and on the incident's timeline, bad input refused clearly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api_helpers import ELEC_SPEC, make_settings, role_headers, state_of
from fastapi.testclient import TestClient

from mlwarden.agent.oncall import MAX_NOTE_CHARS
from mlwarden.server import create_app
from mlwarden.store.incidents import AgentRepo

Secured = tuple[TestClient, dict[str, dict[str, str]], int]


@pytest.fixture
def secured(tmp_path: Any, database_url: str) -> Iterator[Secured]:
    """A server with auth on, the model ``elec`` and one open incident of it."""
    settings = make_settings(tmp_path, database_url, auth=True)
    headers = role_headers(settings)
    with TestClient(create_app(settings)) as client:
        assert (
            client.post("/v1/models", json=ELEC_SPEC, headers=headers["admin"]).status_code == 201
        )
        incident = AgentRepo(state_of(client).store).create_incident("elec", 3, {}, "drifting")
        yield client, headers, incident


def test_operators_acknowledge_assign_and_annotate_audited_and_on_the_timeline(
    secured: Secured,
) -> None:
    client, headers, incident = secured
    viewer, operator = headers["viewer"], headers["operator"]
    base = f"/v1/incidents/{incident}"
    store = state_of(client).store

    for path, body in (
        ("acknowledge", None),
        ("assign", {"assignee": "ann"}),
        ("notes", {"text": "x"}),
    ):
        denied = client.post(f"{base}/{path}", json=body, headers=viewer)
        assert denied.status_code == 403 and "operator role" in denied.json()["error"]
        assert client.post(f"{base}/{path}", json=body).status_code == 401
    assert not [e for e in store.audit_entries() if e["action"].startswith("incident.")]

    acked = client.post(f"{base}/acknowledge", headers=operator)
    assert acked.status_code == 200, acked.text
    assert acked.json()["acknowledged"]["by"] == "operator-t"
    again = client.post(f"{base}/acknowledge", headers=operator)
    assert (
        again.status_code == 409 and "already acknowledged by operator-t" in again.json()["error"]
    )

    assigned = client.post(f"{base}/assign", json={"assignee": "  ann  "}, headers=operator)
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assignee"]["name"] == "ann"
    assert assigned.json()["assignee"]["by"] == "operator-t"
    note = "Upstream ETL job re-ran at 14:02; checking the nswprice units."
    noted = client.post(f"{base}/notes", json={"text": note}, headers=operator)
    assert noted.status_code == 200, noted.text
    assert [(n["by"], n["text"]) for n in noted.json()["notes"]] == [("operator-t", note)]

    shown = client.get(base, headers=viewer).json()
    assert shown["oncall"]["acknowledged"]["by"] == "operator-t"
    assert shown["oncall"]["assignee"]["name"] == "ann"
    assert shown["oncall"]["notes"][0]["text"] == note
    # the agent's view of the incident is unchanged: still open, same severity and windows
    assert (shown["state"], shown["severity"], shown["last_window"]) == ("open", "low", 3)
    events = [(e["event"], e.get("actor")) for e in shown["timeline"]]
    assert events == [
        ("opened", None),
        ("acknowledged", "operator-t"),
        ("assigned", "operator-t"),
        ("note", "operator-t"),
    ]

    audited = {e["action"]: e for e in store.audit_entries(target=f"incident:{incident}")}
    assert set(audited) == {"incident.acknowledge", "incident.assign", "incident.annotate"}
    assert {e["actor"] for e in audited.values()} == {"operator-t"}
    assert audited["incident.assign"]["details"] == {"model": "elec", "assignee": "ann"}
    assert audited["incident.annotate"]["details"]["note"] == note
    assert store.verify_audit() == (True, None)


def test_bad_input_is_refused_clearly_and_nothing_is_recorded(secured: Secured) -> None:
    client, headers, incident = secured
    operator = headers["operator"]
    base = f"/v1/incidents/{incident}"

    for path, body in (
        ("acknowledge", None),
        ("assign", {"assignee": "ann"}),
        ("notes", {"text": "x"}),
    ):
        missing = client.post(f"/v1/incidents/999999/{path}", json=body, headers=operator)
        assert missing.status_code == 404 and "no incident 999999" in missing.json()["error"]

    for body in ({"text": ""}, {"text": "   \n "}, {"text": 42}, {}, ["a note"]):
        refused = client.post(f"{base}/notes", json=body, headers=operator)
        assert refused.status_code == 422, (body, refused.text)
    too_long = client.post(
        f"{base}/notes", json={"text": "x" * (MAX_NOTE_CHARS + 1)}, headers=operator
    )
    assert too_long.status_code == 422 and f"at most {MAX_NOTE_CHARS}" in too_long.json()["error"]
    for body in ({"assignee": ""}, {"assignee": " "}, {"assignee": None}, {"assignee": "a" * 101}):
        refused = client.post(f"{base}/assign", json=body, headers=operator)
        assert refused.status_code == 422, (body, refused.text)
    store = state_of(client).store
    assert AgentRepo(store).get_incident(incident)["timeline"][-1]["event"] == "opened"
    assert not [e for e in store.audit_entries() if e["action"].startswith("incident.")]

    # a closed incident: nothing to acknowledge, but its follow-up can be assigned and noted
    AgentRepo(store).update_incident(incident, state="resolved", event="resolved", text="ok")
    closed = client.post(f"{base}/acknowledge", headers=operator)
    assert closed.status_code == 409 and "resolved" in closed.json()["error"]
    assigned = client.post(f"{base}/assign", json={"assignee": "bo"}, headers=operator)
    assert assigned.status_code == 200 and assigned.json()["acknowledged"] is None
    noted = client.post(f"{base}/notes", json={"text": "post-mortem on Friday"}, headers=operator)
    assert noted.status_code == 200 and noted.json()["state"] == "resolved"
