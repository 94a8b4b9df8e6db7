"""The dashboard's assistant console: files only as uploads and downloads (issue 13, item 2),
and one conversation per browser session (issue 14), through the real app."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from test_ui_server import csrf_of, sign_in

from mlwarden.assistant.datasets import DatasetStore
from mlwarden.server import create_app
from mlwarden.settings import Settings
from mlwarden.store import Store

CSV = b"a,b,label\n1,2,x\n3,4,y\n5,6,x\n"


@pytest.fixture
def app(store: Store, tmp_path: Path) -> Iterator[object]:
    settings = Settings(data_dir=tmp_path / "data", auth=True, write_flush_interval_s=0.05)
    application = create_app(settings, store)
    with TestClient(application):  # runs the app's startup and shutdown once
        yield application


def browser(app: object, store: Store, name: str, role: str = "operator") -> TestClient:
    client = TestClient(app)  # its own cookie jar: its own dashboard session
    sign_in(client, store.create_token(name, role))
    return client


def command(client: TestClient, text: str, confirm: bool = False) -> str:
    form = {"text": text, "csrf": csrf_of(client), "confirm": "1" if confirm else ""}
    page = client.post("/ui/assistant", data=form)
    assert page.status_code == 200, page.text
    return page.text


def status_of(page: str) -> str:
    found = re.search(r'class="state state-(\w+)"', page)
    assert found is not None, page
    return found.group(1)


def files_outside(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_relative_to(root / "data") and "mlwarden.db" not in p.name
    }


def test_the_console_takes_uploads_and_answers_downloads_but_touches_no_server_path(
    app: object, store: Store, tmp_path: Path
) -> None:
    olga = browser(app, store, "olga")
    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_bytes(b"user,password\nroot,hunter2\n")
    target = tmp_path / "outside" / "written.csv"
    before = files_outside(tmp_path)

    page = command(olga, f"upload {secret} as leaked")
    assert status_of(page) == "error" and "reads and writes no files by path" in page
    csrf = csrf_of(olga)
    for bad in ("../../x", f"{tmp_path}/abs", "..\\x", "C:", "a\x00b"):
        upload = olga.post(
            "/ui/assistant/datasets",
            data={"csrf": csrf, "name": bad},
            files={"file": ("data.csv", CSV, "text/csv")},
        )
        assert upload.status_code == 200 and status_of(upload.text) == "error", bad
        assert "dataset name" in upload.text
    assert DatasetStore(store, tmp_path / "data").names() == []
    no_file = olga.post("/ui/assistant/datasets", data={"csrf": csrf, "name": "x"})
    assert no_file.status_code == 200 and "Choose a file to upload" in no_file.text

    stored = olga.post(
        "/ui/assistant/datasets",
        data={"csrf": csrf, "name": ""},  # no name: the file's gives it
        files={"file": ("../../people.csv", CSV, "text/csv")},
    )
    assert status_of(stored.text) == "done" and "stored people v1" in stored.text

    page = command(olga, f"download people to {target}")
    assert status_of(page) == "error" and not target.exists()
    page = command(olga, "download it")  # "it": the dataset this session just uploaded
    link = re.search(r'<a href="([^"]+)" download>', page)
    assert link is not None and link.group(1).startswith("/ui/assistant/datasets/people/download")
    fetched = olga.get(link.group(1).replace("&amp;", "&"))
    assert fetched.status_code == 200 and fetched.headers["content-type"].startswith("text/csv")
    assert pd.read_csv(io.BytesIO(fetched.content)).shape == (3, 3)
    assert files_outside(tmp_path) == before

    # a viewer may download, never upload
    victor = browser(app, store, "victor", "viewer")
    assert victor.get(link.group(1).replace("&amp;", "&")).status_code == 200
    refused = victor.post(
        "/ui/assistant/datasets",
        data={"csrf": csrf_of(victor), "name": "v"},
        files={"file": ("v.csv", CSV, "text/csv")},
    )
    assert refused.status_code == 403
    missing = victor.get("/ui/assistant/datasets/ghost/download")
    assert missing.status_code == 404 and "no dataset named" in missing.text
    assert DatasetStore(store, tmp_path / "data").names() == ["people"]


def test_two_dashboard_sessions_keep_their_own_actor_and_it(app: object, store: Store) -> None:
    olga, oscar = browser(app, store, "olga"), browser(app, store, "oscar")
    assert status_of(command(olga, "load the titanic example")) == "done"
    for client, model in ((olga, "olga-model"), (oscar, "oscar-model")):
        page = command(
            client, f"train a classifier on titanic predicting Survived with logistic as {model}"
        )
        assert status_of(page) == "done", page
    for client in (olga, oscar):
        assert status_of(command(client, "deploy it to staging")) == "done"
    deploys = {
        e["target"]: e["actor"] for e in store.audit_entries(action="deployment.deploy", limit=None)
    }
    assert deploys == {"olga-model": "olga", "oscar-model": "oscar"}


def test_the_console_shows_each_sessions_conversation_and_links_the_processed_dataset(
    app: object, store: Store
) -> None:
    token = store.create_token("olga", "operator")
    olga, oscar = TestClient(app), browser(app, store, "oscar")
    sign_in(olga, token)
    stored = olga.post(
        "/ui/assistant/datasets",
        data={"csrf": csrf_of(olga), "name": "people"},
        files={"file": ("people.csv", CSV, "text/csv")},
    )
    assert status_of(stored.text) == "done"
    assert status_of(command(olga, "load the titanic example")) == "done"
    assert status_of(command(olga, "Clean the dataset and drop non-numeric columns")) == "done"
    page = command(olga, "Download the processed dataset")
    link = re.search(r'<a href="([^"]+)" download>Download titanic v2 \(csv\)', page)
    assert link is not None, page
    processed = olga.get(link.group(1).replace("&amp;", "&"))
    assert processed.status_code == 200
    frame = pd.read_csv(io.BytesIO(processed.content))
    # every passenger, numbers only: the cleaned version, not the raw one
    assert len(frame) == 891 and "Name" not in frame.columns and "Survived" in frame.columns

    # a later visit of the console lists the session's exchanges, newest first, with the link
    history = olga.get("/ui/assistant").text
    section = history[history.index('id="history"') :]
    asked = re.findall(r"<code>([^<]*)</code>", section)
    assert asked == [
        "Download the processed dataset",
        "Clean the dataset and drop non-numeric columns",
        "load the titanic example",
        "upload people.csv",
    ]
    assert section.count('class="state state-done"') == 4
    assert link.group(1) in section
    # another browser session has its own conversation, and sees none of it
    assert 'id="history"' not in oscar.get("/ui/assistant").text
    command(oscar, "list models")
    assert "Download the processed dataset" not in oscar.get("/ui/assistant").text
    # signing in again starts a new conversation
    sign_in(olga, token)
    assert 'id="history"' not in olga.get("/ui/assistant").text


def test_the_conversation_outlives_the_server_and_is_the_same_in_another_process(
    database_url: str, tmp_path: Path
) -> None:
    """Two app instances on one database and data directory, as two server processes (or one
    server before and after a restart): the second shows the session's exchanges and knows
    what "it" is, though the first held them in no memory the second can see."""
    settings = Settings(data_dir=tmp_path / "data", auth=True, write_flush_interval_s=0.05)
    first_store, second_store = Store(database_url), Store(database_url)
    try:
        with TestClient(create_app(settings, first_store)) as first:
            token = first_store.create_token("olga", "operator")
            sign_in(first, token)
            assert status_of(command(first, "load the titanic example")) == "done"
            trained = command(
                first, "train a classifier on titanic predicting Survived with logistic as olga-m"
            )
            assert status_of(trained) == "done", trained
            cookies = dict(first.cookies)
        # the first server is gone; the same browser reaches the second one
        with TestClient(create_app(settings, second_store), cookies=cookies) as second:
            history = second.get("/ui/assistant").text
            section = history[history.index('id="history"') :]
            assert re.findall(r"<code>([^<]*)</code>", section) == [
                "train a classifier on titanic predicting Survived with logistic as olga-m",
                "load the titanic example",
            ]
            assert status_of(command(second, "deploy it to staging")) == "done"
            assert second_store.get_deployment("olga-m", "staging") is not None
            deploys = second_store.audit_entries(action="deployment.deploy", limit=None)
            assert [(e["target"], e["actor"]) for e in deploys] == [("olga-m", "olga")]
            # signing out forgets the conversation in the store, for every process
            assert _kept(second_store) == (1, 3)
            second.post("/ui/logout", data={"csrf": csrf_of(second)})
            assert _kept(second_store) == (0, 0)
    finally:
        first_store.close()
        second_store.close()


def _kept(store: Store) -> tuple[int, int]:
    """How many conversations and exchanges the store keeps."""
    with store.engine.connect() as conn:
        talks = conn.execute(text("SELECT count(*) FROM assistant_conversations")).scalar()
        said = conn.execute(text("SELECT count(*) FROM assistant_exchanges")).scalar()
    return int(talks or 0), int(said or 0)
