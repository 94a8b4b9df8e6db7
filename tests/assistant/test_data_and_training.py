"""Datasets, cleaning, training and the executor on a real SQLite store; bad input answers."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import inspect

from empty_sqlite import migrated_sqlite
from mlwarden.assistant.cleaning import plan_cleaning
from mlwarden.assistant.datasets import DatasetStore
from mlwarden.assistant.executor import Assistant, Conversation, command_for
from mlwarden.assistant.training import choose_task, train_model
from mlwarden.datasets import load
from mlwarden.domain import Task
from mlwarden.errors import InvalidInput, NotFound
from mlwarden.registry.artifacts import load_model
from mlwarden.store import Store


@pytest.fixture
def assistant(tmp_path: Path) -> Iterator[Assistant]:
    store = Store(migrated_sqlite(tmp_path / "db.sqlite"))
    # the tests act as a person at their own machine: files are read and written by path
    yield Assistant(store, tmp_path / "data", cv=3, local_files=True)
    store.close()


@pytest.fixture
def talk() -> Conversation:
    return Conversation("tester")


def test_migration_creates_the_assistant_tables_as_defined(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from mlwarden.store import assistant_tables

    store = Store(f"sqlite:///{tmp_path / 'm.sqlite'}")
    names = inspect(store.engine).get_table_names()
    assert {"datasets", "experiments"} <= set(names)
    with store.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn), assistant_tables.datasets.metadata
        )
    ours = [d for d in diff if any(n in str(d) for n in ("'datasets'", "'experiments'"))]
    assert ours == []
    store.close()


def test_datasets_are_versioned_and_round_trip(tmp_path: Path) -> None:
    store = Store("sqlite://")
    datasets = DatasetStore(store, tmp_path)
    csv = tmp_path / "people.csv"
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"]}).to_csv(csv, index=False)
    first = datasets.upload(csv, "people")
    second = datasets.add_frame("people", datasets.frame("people").dropna(), parent_version=1)
    assert (first.version, second.version, second.parent_version) == (1, 2, 1)
    assert datasets.get("people").version == 2
    assert datasets.latest_cleaned("people").version == 2
    assert datasets.frame("people", 1).shape == (3, 2)
    info, out = datasets.export("people", 1, output=tmp_path / "o.parquet", fmt="parquet")
    assert pd.read_parquet(out).shape == (3, 2) and info.version == 1
    with pytest.raises(NotFound, match="no version 9"):
        datasets.get("people", 9)


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("missing.csv", None, NotFound, "file not found"),
        ("empty.csv", "", InvalidInput, "cannot read empty.csv"),
        ("notes.docx", "hello", InvalidInput, "cannot read notes.docx"),
        ("header_only.csv", "a,b\n", InvalidInput, "has no data"),
    ],
)
def test_bad_files_get_a_clear_error(
    tmp_path: Path, name: str, content: str | None, error: type, message: str
) -> None:
    datasets = DatasetStore(Store("sqlite://"), tmp_path)
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(error, match=message):
        datasets.upload(path)


def test_cleaning_titanic_reports_every_change_and_replays_identically() -> None:
    frame = load("titanic")
    plan = plan_cleaning(frame, keep=["Survived"])
    by_column = {step.column: step for step in plan.steps}
    assert "identifier" in by_column["PassengerId"].reason
    assert "identifier" in by_column["Name"].reason
    assert by_column["Cabin"].reason.startswith("mostly empty")
    assert by_column["Age"].action == "impute" and by_column["Age"].detail["value"] == 28.0
    assert by_column["Sex"].action == "encode_binary"
    assert by_column["Embarked"].action == "encode_onehot"
    cleaned = plan.apply(frame)
    assert cleaned.isna().sum().sum() == 0
    # no passenger is a duplicate: the raw file repeats no row, and rows alike once names,
    # tickets and cabins are gone are still different people
    assert not any(step.action == "drop_duplicates" for step in plan.steps)
    assert len(cleaned) == len(frame) == 891
    assert cleaned["Survived"].mean() == frame["Survived"].mean()
    assert list(cleaned.columns) == plan.columns_after and len(cleaned) == plan.rows_after
    assert set(cleaned["Survived"]) == {0, 1}  # the kept target is not encoded or imputed
    pd.testing.assert_frame_equal(plan.apply(frame), cleaned)


def test_only_rows_repeated_in_every_column_are_duplicates() -> None:
    frame = pd.DataFrame(
        {
            "name": ["Ann", "Bob", "Ann", "Cid", "Dee", "Eve"],
            "age": [30.0, 30.0, 30.0, None, None, 50.0],
            "y": [1, 1, 1, 0, 0, 0],
        }
    )
    plan = plan_cleaning(frame, keep=["y"], drop_non_numeric=True)
    dropped = [step for step in plan.steps if step.action == "drop_duplicates"]
    # row 2 repeats row 0 whole; Bob and Dee only match others once the names go
    assert [step.detail["rows"] for step in dropped] == [1]
    assert plan.steps[0] is dropped[0]  # judged on the file's columns, before any goes
    cleaned = plan.apply(frame)
    assert cleaned.to_dict("list") == {
        "age": [30.0, 30.0, 30.0, 30.0, 50.0],
        "y": [1, 1, 0, 0, 0],
    }


def test_a_thousand_level_text_column_is_capped_or_dropped_not_exploded() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    frame = pd.DataFrame(
        {
            "city": [f"city-{i}" for i in rng.integers(0, 1000, n)],  # 1000 levels, repeated
            "comment": [f"free text number {i}" for i in range(n)],  # unique on every row
            "x": rng.normal(size=n),
        }
    )
    frame["y"] = (frame["x"] + rng.normal(scale=0.5, size=n) > 0).astype(int)
    plan = plan_cleaning(frame, keep=["y"])
    steps = {(step.column, step.action): step for step in plan.steps}
    assert len(steps["city", "cap_levels"].detail["levels"]) == 19
    assert ("city", "encode_onehot") in steps
    assert ("comment", "drop_column") in steps
    cleaned = plan.apply(frame)
    assert cleaned.shape[1] <= 25  # x, y, 19 kept levels + "other"
    result = train_model(frame, "y", algorithm="logistic_regression", cv=2)
    assert "comment" in result.dropped
    assert any(note.startswith("'city' has 99") for note in result.notes), result.notes
    encoded = result.estimator.named_steps["prepare"].transform(result.X_test.iloc[:5])
    assert encoded.shape[1] <= 1 + 20


def test_target_with_one_class_is_refused_clearly() -> None:
    frame = pd.DataFrame({"x": range(50), "y": ["yes"] * 50, "z": np.linspace(0, 1, 50)})
    with pytest.raises(InvalidInput, match="single class"):
        train_model(frame, "y", task="classification")


def test_unknown_target_column_names_the_close_one() -> None:
    with pytest.raises(InvalidInput, match=r"unknown column 'survived' \(did you mean 'Survived'"):
        train_model(load("titanic"), "survived")


def test_regression_on_text_target_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not numeric"):
        train_model(load("titanic"), "Sex", task="regression")


def test_task_is_chosen_from_the_target() -> None:
    frame = load("titanic")
    assert choose_task(frame["Survived"]) is Task.CLASSIFICATION
    assert choose_task(frame["Fare"]) is Task.REGRESSION
    assert choose_task(frame["Sex"]) is Task.CLASSIFICATION


def test_executor_flow_on_a_real_store(
    assistant: Assistant, talk: Conversation, tmp_path: Path
) -> None:
    assert assistant.handle("load the titanic example", talk).status == "done"
    cleaned = assistant.handle("clean it", talk)
    assert cleaned.status == "done" and cleaned.result["dataset"]["version"] == 2
    assert "drop column 'PassengerId'" in cleaned.message
    trained = assistant.handle(
        "train a classifier on titanic to predict Survived with logistic regression", talk
    )
    assert trained.status == "done", trained.message
    assert trained.result["model"] == "titanic-survived" and trained.result["version"] == 1
    assert trained.result["dataset"] == {"name": "titanic", "version": 2}
    assert trained.result["metrics"]["accuracy"] > 0.7
    regression = assistant.handle(
        "train a regression model on titanic predicting Fare with ridge", talk
    )
    assert regression.status == "done", regression.message
    assert regression.result["task"] == "regression" and "r2" in regression.result["metrics"]

    store = assistant.store
    artifact = store.load_artifact("titanic-survived", 1)
    estimator = load_model(artifact)  # the registry's loader: only trusted types
    # trained on the cleaned version, it takes the raw rows and cleans them itself
    row = assistant.datasets.frame("titanic", 1).drop(columns="Survived").iloc[:3]
    assert len(estimator.predict(row)) == 3
    assert store.get_model("titanic-survived").feature_names == list(row.columns)
    # the held-out rows: a fifth of the 891 passengers, none dropped as a duplicate
    assert len(store.reference_sample("titanic-survived", 1)) == 179
    assert store.get_version("titanic-survived", 1).feature_importance

    assert assistant.handle("deploy titanic-survived to staging", talk).status == "done"
    assert store.get_deployment("titanic-survived", "staging").live_version == 1
    assert store.get_deployment("titanic-survived", "production") is None

    refused = assistant.handle("promote it to production", talk)
    assert refused.status == "needs_confirmation"
    assert store.get_deployment("titanic-survived", "production") is None
    assert assistant.handle("promote it to production", talk, confirm=True).status == "done"
    assert store.get_deployment("titanic-survived", "production").live_version == 1
    deploys = [e["details"] for e in store.events("titanic-survived") if e["kind"] == "deploy"]
    assert {d["environment"] for d in deploys} == {"staging", "production"}
    assert any(d["reason"].startswith("promoted from staging") for d in deploys)

    store.set_monitoring("titanic-survived", False)
    assert assistant.handle("monitor titanic-survived for drift", talk).status == "done"
    assert store.is_monitored("titanic-survived")

    out = tmp_path / "clean.csv"
    downloaded = assistant.handle(f"download the cleaned titanic to {out}", talk)
    assert downloaded.status == "done"
    assert pd.read_csv(out).shape == (891, 10)

    runs = assistant.handle("show experiments", talk)
    assert [r["model"] for r in runs.result["experiments"]] == ["titanic-survived", "titanic-fare"]
    compared = assistant.handle("compare runs 1 and 2", talk)
    assert {row["metric"] for row in compared.result["metrics"]} >= {"accuracy", "r2"}


@pytest.mark.slow
def test_training_is_logged_to_mlflow_only_when_a_tracking_server_is_named(
    assistant: Assistant, talk: Conversation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    assistant.handle("load the titanic example", talk)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    quiet = assistant.handle("train a classifier on titanic to predict Survived", talk)
    assert quiet.status == "done" and quiet.result["mlflow_run"] is None
    assert list(workdir.iterdir()) == []  # no ./mlruns store made behind the user's back
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    logged = assistant.handle("train a classifier on titanic to predict Survived", talk)
    assert logged.status == "done", logged.message
    run = mlflow.MlflowClient(tracking).get_run(logged.result["mlflow_run"])
    assert run.data.metrics["accuracy"] == pytest.approx(logged.result["metrics"]["accuracy"])
    assert run.info.run_name == f"titanic-survived-v{logged.result['version']}"
    # the model's files sit beside the tracking database, never in ./mlruns of the CWD
    assert list(workdir.iterdir()) == []
    artifacts = tmp_path / "mlflow-artifacts"
    assert run.info.artifact_uri.startswith(artifacts.as_uri())
    assert list(artifacts.rglob("MLmodel")), "the logged model's files are beside the database"
    # what the model needs to load, pinned to what trained it, named without MLflow's inference
    (requirements,) = artifacts.rglob("requirements.txt")
    pins = dict(line.split("==") for line in requirements.read_text().splitlines())
    assert pins["scikit-learn"] == importlib.metadata.version("scikit-learn")
    assert pins["numpy"] == importlib.metadata.version("numpy")
    assert pins["skops"] == importlib.metadata.version("skops")  # MLflow 3: skops files
    again = assistant.handle("train a classifier on titanic to predict Survived", talk)
    second = mlflow.MlflowClient(tracking).get_run(again.result["mlflow_run"])
    assert second.info.experiment_id == run.info.experiment_id  # one experiment, found again
    assert list(workdir.iterdir()) == []


def test_rollback_returns_to_the_previous_live_version(
    assistant: Assistant, talk: Conversation
) -> None:
    assistant.handle("load the titanic example", talk)
    assistant.handle("clean it", talk)  # fewer, numeric columns: quicker versions
    for _ in range(2):
        reply = assistant.run(
            command_for(
                "train",
                {"dataset": "titanic", "target": "Survived", "algorithm": "logistic_regression"},
            ),
            talk,
        )
        assert reply.status == "done", reply.message
    assistant.run(command_for("deploy", {"model": "titanic-survived", "version": 1}), talk)
    assistant.run(command_for("deploy", {"model": "titanic-survived", "version": 2}), talk)
    reply = assistant.handle("roll back titanic-survived in staging", talk)
    assert reply.status == "done", reply.message
    assert assistant.store.get_deployment("titanic-survived", "staging").live_version == 1
    production = assistant.handle("roll back titanic", talk)  # production: never deployed there
    assert (
        production.status == "error" and "never been deployed to production" in production.message
    )


@pytest.mark.parametrize(
    ("text", "status", "http", "fragment"),
    [
        ("upload /nowhere/missing.csv", "error", 404, "file not found: /nowhere/missing.csv"),
        ("train a classifier on titanic predicting Survivalrate", "error", 422, "unknown column"),
        ("train a model on titanic", "needs_input", 200, "Which column"),
        ("deploy ghost-model to staging", "error", 404, "no model named 'ghost-model'"),
        ("clean nosuchdata", "error", 404, "no dataset named 'nosuchdata'"),
        ("compare runs 1 and 2", "error", 404, "no experiment run 1"),
        ("delete titanic", "not_understood", 200, "never deletes"),
        ("flibber the jabberwock", "not_understood", 200, "flibber jabberwock"),
    ],
)
def test_bad_requests_get_a_clear_answer(
    assistant: Assistant, talk: Conversation, text: str, status: str, http: int, fragment: str
) -> None:
    assistant.handle("load the titanic example", talk)
    reply = assistant.handle(text, talk)
    assert (reply.status, reply.http_status) == (status, http), reply.message
    assert fragment in reply.message


def test_one_class_target_through_the_executor(
    assistant: Assistant, talk: Conversation, tmp_path: Path
) -> None:
    path = tmp_path / "flat.csv"
    pd.DataFrame({"x": range(40), "w": np.arange(40) % 7, "label": ["ok"] * 40}).to_csv(
        path, index=False
    )
    assert assistant.handle(f"upload {path} as flat", talk).status == "done"
    reply = assistant.handle("train a classifier on flat predicting label", talk)
    assert reply.status == "error" and reply.http_status == 422
    assert "single class" in reply.message
