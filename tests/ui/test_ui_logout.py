"""Signing out of the dashboard ends the session on the server: the old cookie is refused.

Before, logout only asked the browser to drop the cookie; a copy of it stayed valid for the
12 hours its signature lasted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_ui_server import client_for, csrf_of, make_model, sign_in

from mlwarden.domain import Role
from mlwarden.store import Store
from mlwarden.store import tables as t
from mlwarden.ui.session import SESSION_COOKIE, Session, SessionTable


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    make_model(store)
    with client_for(store, tmp_path) as c:
        yield c


def _sessions(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.ui_sessions)).scalar_one())


def test_the_cookie_of_a_signed_out_session_is_refused(client: TestClient, store: Store) -> None:
    token = store.create_token("olga", "operator")
    assert sign_in(client, token).status_code == 303
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie and _sessions(store) == 1
    assert client.get("/ui/").status_code == 200

    out = client.post("/ui/logout", data={"csrf": csrf_of(client)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert _sessions(store) == 0

    # an attacker (or another tab) still holding the cookie gets nothing
    client.cookies.set(SESSION_COOKIE, cookie, path="/ui")
    page = client.get("/ui/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
    assert client.get("/ui/live/overview").status_code == 401
    refused = client.post("/ui/logout", data={"csrf": "x"}, follow_redirects=False)
    assert refused.headers["location"].startswith("/ui/login")
    actions = [(e["actor"], e["action"]) for e in store.audit_entries()]
    assert actions.count(("olga", "ui.sign_out")) == 1


def test_signing_out_ends_only_that_session(client: TestClient, store: Store) -> None:
    token = store.create_token("olga", "operator")
    sign_in(client, token)
    first = client.cookies.get(SESSION_COOKIE)
    client.cookies.clear()
    sign_in(client, token)  # the same token signed in from a second browser
    second = client.cookies.get(SESSION_COOKIE)
    assert first and second and first != second and _sessions(store) == 2

    client.post("/ui/logout", data={"csrf": csrf_of(client)}, follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, second, path="/ui")
    assert client.get("/ui/", follow_redirects=False).status_code == 303
    client.cookies.set(SESSION_COOKIE, first, path="/ui")
    assert client.get("/ui/").status_code == 200


def test_a_session_past_its_age_is_refused_and_purged(store: Store) -> None:
    sessions = SessionTable(store)
    old = Session.new("olga", Role.OPERATOR)
    sessions.start(old, max_age_s=-1)
    assert not sessions.is_active(old)
    fresh = Session.new("olga", Role.OPERATOR)
    sessions.start(fresh)  # each sign-in forgets the expired ones
    assert sessions.is_active(fresh) and _sessions(store) == 1
    sessions.end(fresh)
    assert not sessions.is_active(fresh) and _sessions(store) == 0
