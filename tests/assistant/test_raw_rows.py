"""A model the assistant trained on a cleaned dataset takes the raw rows: the cleaning is its
first step, so production sends rows as they are in the file (names, tickets, missing ages,
text sexes) and each is cleaned as the training rows were."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from mlwarden.agent.remedies.retrain import fit_like
from mlwarden.api import routes_assistant
from mlwarden.assistant.cleaning import CleaningPlan, Step
from mlwarden.assistant.executor import Assistant, Conversation
from mlwarden.datasets import path_of
from mlwarden.monitor.engine import Monitor
from mlwarden.registry.artifacts import load_model
from mlwarden.registry.preparation import CleaningSteps
from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.settings import Settings
from mlwarden.store import Store


def _ask(http: httpx.Client, text: str, **flags: Any) -> dict[str, Any]:
    response = http.post("/v1/assistant", json={"text": text, **flags})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "done", body["message"]
    return body


def _instances(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON sends them: a missing value is null."""
    return [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in rows.to_dict(orient="records")
    ]


def test_raw_titanic_rows_are_served_by_the_cleaned_model_over_http(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        write_flush_interval_s=0.05,
        auth=False,
    )
    app = create_app(settings)
    app.include_router(routes_assistant.router)
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        store: Store = app.state.mlwarden.store
        with open(path_of("titanic"), "rb") as handle:
            uploaded = http.post(
                "/v1/assistant/datasets",
                files={"file": ("titanic.csv", handle, "text/csv")},
                data={"name": "titanic"},
            )
        assert uploaded.status_code == 200, uploaded.text
        cleaned = _ask(http, "clean titanic keeping Survived")
        assert cleaned["result"]["dataset"]["rows"] == 891  # no passenger taken for a duplicate
        assert "steps that drop rows apply to the training data only" in cleaned["message"]
        trained = _ask(http, "train a classifier on titanic predicting Survived")
        assert trained["result"]["dataset"] == {"name": "titanic", "version": 2}
        raw = pd.read_csv(path_of("titanic"))
        inputs = [c for c in raw.columns if c != "Survived"]
        assert trained["result"]["inputs"] == inputs
        assert trained["result"]["cleaning"]["from"] == "titanic v1"
        assert "applied to the training data only" in trained["message"]
        _ask(http, "deploy titanic-survived to production", confirm=True)

        # the schema and the reference are the raw columns
        spec = store.get_model("titanic-survived")
        assert spec.feature_names == inputs
        number = trained["result"]["version"]
        reference = store.reference_sample("titanic-survived", number) or []
        assert reference and set(reference[0]) == {*inputs, "Survived"}

        # rows as in the CSV: a missing Age, Cabin or Embarked, text Sex, Name and Ticket
        picked = raw[raw["Age"].isna()].index[:4].tolist()
        picked += raw[raw["Embarked"].isna()].index.tolist()
        picked += raw[raw["Cabin"].notna()].index[:4].tolist()
        rows = raw.loc[picked, inputs]
        assert rows["Age"].isna().any() and rows["Embarked"].isna().any()
        served = http.post(
            "/v1/models/titanic-survived/predict", json={"instances": _instances(rows)}
        )
        assert served.status_code == 200, served.text
        answers = served.json()["predictions"]
        assert len(answers) == len(picked)

        # the served pipeline: its cleaning step turns the raw rows into the cleaned version's
        # rows, and the predictions are the model's own on the cleaned data
        pipeline = load_model(store.load_artifact("titanic-survived", number))
        assert isinstance(pipeline[0], CleaningSteps)
        download = http.get("/v1/assistant/datasets/titanic/download?version=2&format=parquet")
        assert download.status_code == 200
        cleaned_rows = pd.read_parquet(io.BytesIO(download.content)).loc[picked]
        features = pipeline[0].features
        pd.testing.assert_frame_equal(
            pipeline[0].transform(rows),
            cleaned_rows[features].astype(float),
            check_dtype=False,
        )
        own = pipeline[1:].predict_proba(cleaned_rows[features].astype(float))
        classes = [int(c) for c in pipeline.classes_]
        for answer, probabilities in zip(answers, own, strict=True):
            assert answer["prediction"] == classes[int(np.argmax(probabilities))]
            assert [answer["probabilities"][str(c)] for c in classes] == pytest.approx(
                probabilities.tolist()
            )

        # and each answer is recorded for monitoring
        deadline = time.monotonic() + 10
        while store.count_records("titanic-survived") < len(picked):
            assert time.monotonic() < deadline, "the answers were not recorded"
            time.sleep(0.05)
        ids = {a["id"] for a in answers}
        assert store.record_ids_present(ids, "titanic-survived") == ids


def test_rows_dropped_by_cleaning_shape_training_only(tmp_path: Path) -> None:
    """Repeated rows and rows without a target leave the training data; the model still
    answers such a row, and the reply says the row drops were for training only."""
    rng = np.random.default_rng(3)
    n = 120
    frame = pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], n),
            "size": rng.normal(10, 3, n).round(2),
            "shop": rng.choice(["north", "south"], n),
        }
    )
    frame["bought"] = ((frame["size"] > 10) ^ (frame["colour"] == "red")).astype(int)
    frame.loc[[4, 9], "size"] = np.nan
    frame = pd.concat([frame, frame.iloc[:5]], ignore_index=True)  # 5 repeated rows
    frame.loc[len(frame)] = {"colour": "red", "size": 3.0, "shop": "north", "bought": np.nan}
    csv = tmp_path / "shop.csv"
    frame.to_csv(csv, index=False)

    assistant = Assistant(Store("sqlite://"), tmp_path / "data", local_files=True, cv=3)
    talk = Conversation("alice")
    assert assistant.handle(f"upload {csv} as shop", talk).status == "done"
    cleaned = assistant.handle("clean shop keeping bought", talk)
    actions = [s["action"] for s in cleaned.result["plan"]["steps"]]
    assert "drop_duplicates" in actions and "drop_rows_missing_target" in actions
    trained = assistant.handle("train a classifier on shop predicting bought", talk)
    assert trained.status == "done", trained.message
    repeats = int(frame.duplicated().sum())
    assert repeats >= 5
    assert f"{repeats} repeated rows, 1 rows without 'bought'" in trained.message
    assert "the served model answers every row it is sent" in trained.message
    kept = trained.result["metrics"]["train_rows"] + trained.result["metrics"]["test_rows"]
    assert kept == len(frame) - repeats - 1

    store = assistant.store
    pipeline = load_model(store.load_artifact("shop-bought", trained.result["version"]))
    rows = frame.drop(columns=["bought"]).iloc[[0, 120, 4, 125]]  # a repeat, a gap, no target
    answers = pipeline.predict(rows)
    assert len(answers) == 4 and answers[0] == answers[1]  # a repeated row is answered alike


def test_inputs_the_cleaning_drops_are_validated_but_not_watched(tmp_path: Path) -> None:
    """Name, Ticket, PassengerId and Cabin are accepted (raw rows carry them) but unused: a
    name is new on every row, so watching it would report drift on every window."""
    store = Store("sqlite://")
    assistant = Assistant(store, tmp_path / "data", cv=3)
    talk = Conversation("alice")
    assistant.handle("load the titanic example", talk)
    assistant.handle("clean titanic", talk)
    trained = assistant.handle(
        "train a classifier on titanic predicting Survived with logistic regression", talk
    )
    assert trained.status == "done", trained.message
    spec = store.get_model("titanic-survived")
    unused = [f.name for f in spec.features if not f.monitored]
    assert unused == ["PassengerId", "Name", "Ticket", "Cabin"]
    assert trained.result["cleaning"]["not_monitored"] == unused
    assert "not watched for drift: PassengerId, Name, Ticket, Cabin" in trained.message

    reference = pd.DataFrame(store.reference_sample("titanic-survived", 1)).drop(
        columns=["Survived"]
    )
    monitor = Monitor(reference, spec)
    assert set(monitor.features) == {f.name for f in spec.features} - set(unused)
    raw = pd.read_csv(path_of("titanic")).drop(columns=["Survived"])
    for start in (0, 300, 600):
        quiet = monitor.process(raw.iloc[start : start + 200])
        assert quiet.findings == [], [f.message for f in quiet.findings]
    older = raw.iloc[:200].assign(Age=raw["Age"].iloc[:200] + 30)
    drifted = monitor.process(older)
    watched = {name for f in drifted.findings for name in f.features}
    assert "Age" in watched and not watched & set(unused), [f.message for f in drifted.findings]

    # the agent's retrain refits the same recipe, cleaning step included, on raw rows
    champion = load_model(store.load_artifact("titanic-survived", 1))
    labels = pd.read_csv(path_of("titanic"))["Survived"].to_numpy()
    retrained = fit_like(champion, raw, labels, spec.task)
    assert isinstance(retrained[0], CleaningSteps) and retrained[0].features == champion[0].features
    assert retrained.score(raw, labels) > 0.75


def test_a_version_cleaned_before_its_steps_were_kept_trains_on_its_own_columns(
    tmp_path: Path,
) -> None:
    store = Store("sqlite://")
    assistant = Assistant(store, tmp_path / "data", cv=3)
    talk = Conversation("alice")
    assistant.handle("load the titanic example", talk)
    numbers = assistant.datasets.frame("titanic").select_dtypes("number")
    assistant.datasets.add_frame("titanic", numbers, parent_version=1)  # no steps kept
    assert assistant.datasets.lineage("titanic") is None
    trained = assistant.handle(
        "train a classifier on titanic predicting Survived with logistic regression", talk
    )
    assert trained.status == "done", trained.message
    assert "was cleaned before its steps were kept" in trained.message
    assert trained.result["cleaning"] is None
    assert "Name" not in store.get_model("titanic-survived").feature_names


def test_a_version_cleaned_twice_replays_both_cleanings(tmp_path: Path) -> None:
    store = Store("sqlite://")
    assistant = Assistant(store, tmp_path / "data", cv=3)
    talk = Conversation("alice")
    assistant.handle("load the titanic example", talk)
    assert assistant.handle("clean titanic", talk).result["dataset"]["version"] == 2
    second = CleaningPlan([Step("drop_column", "Fare", "a second pass")], 891, 891, [], [])
    twice = second.apply(assistant.datasets.frame("titanic", 2))
    steps = second.as_dict()["steps"]
    assistant.datasets.add_frame("titanic", twice, parent_version=2, cleaning=steps)
    trained = assistant.handle(
        "train a classifier on titanic predicting Survived with logistic regression", talk
    )
    assert trained.status == "done", trained.message
    assert trained.result["dataset"] == {"name": "titanic", "version": 3}
    assert trained.result["cleaning"]["from"] == "titanic v1"
    spec = store.get_model("titanic-survived")
    assert [f.name for f in spec.features if not f.monitored] == [
        "PassengerId",
        "Name",
        "Ticket",
        "Fare",
        "Cabin",
    ]
    pipeline = load_model(store.load_artifact("titanic-survived", 1))
    raw = pd.read_csv(path_of("titanic")).drop(columns=["Survived"])
    pd.testing.assert_frame_equal(
        pipeline[0].transform(raw),
        twice.drop(columns=["Survived"]).astype(float),
        check_dtype=False,
    )
