"""Over HTTP the assistant reads and writes no server file by path (issue 13, item 2).

Each attack of the issue is sent through the real app with an operator token: a dataset name
that climbs out of the data directory or is absolute, ``upload /any/file.csv`` (and training
on one), ``download <dataset> to /any/path``, a symlink planted in the data directory, a
stored row pointing outside it. Each is refused with a clear 4xx, and the files outside the
data directory are exactly what they were.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from mlwarden.server import create_app
from mlwarden.settings import Settings
from mlwarden.store import Store
from mlwarden.store.assistant_tables import datasets as datasets_table

CSV = b"a,b,label\n1,2,x\n3,4,y\n5,6,x\n"


class Server:
    """The app under test, its operator's headers and the folders around its data directory."""

    def __init__(self, client: TestClient, store: Store, root: Path, headers: dict[str, str]):
        self.client = client
        self.store = store
        self.root = root
        self.data_dir = root / "data"
        self.outside = root / "outside"
        self.headers = headers

    def ask(self, text: str) -> Any:
        return self.client.post("/v1/assistant", json={"text": text}, headers=self.headers)

    def upload(self, filename: str, content: bytes = CSV, **form: str) -> Any:
        return self.client.post(
            "/v1/assistant/datasets",
            files={"file": (filename, content, "text/csv")},
            data=form,
            headers=self.headers,
        )

    def files_outside(self) -> dict[str, bytes]:
        """Every file under the test's folder but the data directory and the database."""
        found = {}
        for path in self.root.rglob("*"):
            if path.is_relative_to(self.data_dir) or path.name.startswith("mlwarden.db"):
                continue
            if path.is_file() or path.is_symlink():
                found[str(path.relative_to(self.root))] = path.read_bytes()
        return found

    def dataset_names(self) -> list[str]:
        from mlwarden.assistant.datasets import DatasetStore

        return DatasetStore(self.store, self.data_dir).names()


@pytest.fixture
def server(store: Store, tmp_path: Path) -> Iterator[Server]:
    settings = Settings(data_dir=tmp_path / "data", auth=True, write_flush_interval_s=0.05)
    token = store.create_token("olga", "operator")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.csv").write_bytes(b"user,password\nroot,hunter2\n")
    with TestClient(create_app(settings, store)) as client:
        yield Server(client, store, tmp_path, {"Authorization": f"Bearer {token}"})


def store_row(store: Store, name: str, path: str, columns: list[str]) -> None:
    """A dataset row as an older version, which did not check names, may have left it."""
    with store.engine.begin() as conn:
        conn.execute(
            insert(datasets_table).values(
                name=name,
                version=1,
                path=path,
                rows=2,
                columns=columns,
                parent_version=None,
                description="",
                created_at=pd.Timestamp.now(tz="UTC").to_pydatetime(),
            )
        )


def refused(response: Any, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and fragment in body["message"], body["message"]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("../../x", "contains a path separator ('/')"),
        ("../outside/secret", "contains a path separator ('/')"),
        ("..", "is a relative directory"),
        ("/ABSOLUTE/x", "is an absolute path"),
        ("..\\..\\x", "contains a path separator ('\\\\')"),
        ("C:", "contains ':'"),
        ("evil\x00name", "contains a NUL byte"),
        ("   ", "is empty"),  # an empty field is no name: the file name gives one
        ("n" * 300, "300 characters long"),
    ],
)
def test_an_upload_name_that_leaves_the_data_directory_is_refused(
    server: Server, name: str, fragment: str
) -> None:
    before = server.files_outside()
    name = name.replace("/ABSOLUTE", str(server.root))
    response = server.upload("data.csv", name=name)
    refused(response, 422, fragment)
    assert server.files_outside() == before
    assert not (server.root / "x").exists() and not (server.root / "x" / "v1.parquet").exists()
    assert server.dataset_names() == []


@pytest.mark.parametrize(
    "filename", ["../../escape.csv", "/tmp/../escape.csv", "..\\..\\escape.csv", "C:escape.csv"]
)
def test_an_uploaded_file_name_only_names_the_dataset(server: Server, filename: str) -> None:
    before = server.files_outside()
    stored = server.upload(filename)
    assert stored.status_code == 200, stored.text
    dataset = stored.json()["result"]["dataset"]
    assert dataset["name"].endswith("escape") and dataset["rows"] == 3
    assert server.files_outside() == before
    [written] = [p for p in server.data_dir.rglob("*.parquet")]
    assert written.parent.parent == server.data_dir / "datasets"


def test_upload_of_a_server_file_by_path_is_refused(server: Server) -> None:
    secret = server.outside / "secret.csv"
    before = server.files_outside()
    refused(server.ask(f"upload {secret} as leaked"), 422, "reads and writes no files by path")
    refused(
        server.ask(f"train a classifier on {secret} predicting password"),
        422,
        "reads and writes no files by path",
    )
    assert server.dataset_names() == []
    leaked = server.client.get("/v1/assistant/datasets/leaked/download", headers=server.headers)
    assert leaked.status_code == 404
    assert server.files_outside() == before
    assert "upload the file itself" in server.ask("help").json()["message"]


def test_download_to_a_server_path_is_refused_and_a_download_is_a_response(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert server.upload("data.csv", name="people").status_code == 200
    workdir = server.root / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # where a download without a path used to be written
    target = server.outside / "written.csv"
    before = server.files_outside()

    refused(server.ask(f"download people to {target}"), 422, f"cannot write {target}")
    assert not target.exists()

    ready = server.ask("download people as parquet")
    assert ready.status_code == 200, ready.text
    url = ready.json()["result"]["url"]
    assert url == "/v1/assistant/datasets/people/download?version=1&format=parquet"
    fetched = server.client.get(url, headers=server.headers)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "application/vnd.apache.parquet"
    assert 'filename="people-v1.parquet"' in fetched.headers["content-disposition"]
    assert pd.read_parquet(io.BytesIO(fetched.content)).shape == (3, 3)
    assert server.files_outside() == before and list(workdir.iterdir()) == []


def test_a_download_in_an_unknown_format_is_refused(server: Server) -> None:
    assert server.upload("data.csv", name="people").status_code == 200
    response = server.client.get(
        "/v1/assistant/datasets/people/download?format=..%2F..%2Fx", headers=server.headers
    )
    assert response.status_code == 422 and "format must be one of" in response.json()["error"]


def test_a_symlink_planted_in_the_data_directory_is_not_followed_out(server: Server) -> None:
    (server.data_dir / "datasets").mkdir(parents=True, exist_ok=True)
    os.symlink(server.outside, server.data_dir / "datasets" / "planted")
    before = server.files_outside()
    refused(server.upload("data.csv", name="planted"), 422, "leads outside the data directory")
    assert server.files_outside() == before
    assert server.dataset_names() == []


def test_a_stored_row_pointing_outside_is_not_read(server: Server) -> None:
    # a row left by a version that did not check names: its file is outside the data directory
    pd.DataFrame({"user": ["root"]}).to_parquet(server.outside / "secret.parquet")
    store_row(server.store, "old", "datasets/../../outside/secret.parquet", ["user"])
    response = server.client.get("/v1/assistant/datasets/old/download", headers=server.headers)
    assert response.status_code == 422 and "is a relative directory" in response.json()["error"]
    refused(server.ask("clean old"), 422, "is a relative directory")


def test_a_dataset_an_older_version_stored_under_a_free_name_still_downloads(
    server: Server,
) -> None:
    # the old upload route named datasets after the file's stem: spaces, quotes, accents
    name = 'my "caf\u00e9" data'
    folder = server.data_dir / "datasets" / name
    folder.mkdir(parents=True)
    pd.DataFrame({"a": [1, 2]}).to_parquet(folder / "v1.parquet")
    store_row(server.store, name, f"datasets/{name}/v1.parquet", ["a"])
    response = server.client.get(
        "/v1/assistant/datasets/my%20%22caf%C3%A9%22%20data/download", headers=server.headers
    )
    assert response.status_code == 200, response.text
    assert pd.read_csv(io.BytesIO(response.content)).shape == (2, 1)
    disposition = response.headers["content-disposition"]
    assert disposition == "attachment; filename*=utf-8''my%20%22caf%C3%A9%22%20data-v1.csv"
