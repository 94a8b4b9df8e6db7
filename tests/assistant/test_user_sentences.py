"""Users' own sentences (issue 15) run against a real SQLite store: what each one changes or
answers, not only how it parses. The same sentences are in the parser's phrasings list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from empty_sqlite import migrated_sqlite
from mlwarden.api import routes_assistant
from mlwarden.assistant.executor import Assistant, Conversation
from mlwarden.cli.main import app as cli
from mlwarden.clock import utcnow
from mlwarden.domain import ActionKind, FeatureSpec, Finding, FindingKind, ModelSpec, Task
from mlwarden.server import create_app
from mlwarden.settings import Settings, get_settings
from mlwarden.store import Store
from mlwarden.store.incidents import AgentRepo
from mlwarden.store.journal import ActionJournal


@pytest.fixture
def assistant(tmp_path: Path) -> Iterator[Assistant]:
    store = Store(migrated_sqlite(tmp_path / "db.sqlite"))
    yield Assistant(store, tmp_path / "data")
    store.close()


def _model(store: Store, name: str) -> None:
    features = [FeatureSpec(name="Age"), FeatureSpec(name="Fare")]
    store.create_model(ModelSpec(name=name, task=Task.CLASSIFICATION, features=features))


def _drift(window: int, feature: str, score: float) -> Finding:
    return Finding(
        kind=FindingKind.DATA_DRIFT,
        detector="psi",
        features=[feature],
        statistic="psi",
        score=score,
        threshold=0.2,
        window=window,
        message=f"{feature} drifted",
    )


@pytest.fixture
def on_call(assistant: Assistant) -> Assistant:
    _on_call_story(assistant.store)
    return assistant


def _on_call_story(store: Store) -> None:
    """demo: drift on Age in windows 2 and 3, nulls in Fare in window 3, one open incident with
    a rollback journaled; titanic: one quiet window and one resolved incident."""
    _model(store, "demo")
    _model(store, "titanic")
    repo = AgentRepo(store)
    start = utcnow() - timedelta(hours=1)
    nulls = Finding(
        kind=FindingKind.DATA_QUALITY,
        detector="null_rate",
        features=["Fare"],
        statistic="null_rate",
        score=0.6,
        threshold=0.05,
        window=3,
        message="Fare is 60 % null",
    )
    windows = {1: [], 2: [_drift(2, "Age", 0.31)], 3: [_drift(3, "Age", 0.45), nulls]}
    for window, findings in windows.items():
        repo.save_window("demo", window, start + timedelta(minutes=window), {}, findings)
    repo.save_window("titanic", 1, start, {}, [])
    incident = repo.create_incident("demo", 2, {}, "Age drifted and Fare is mostly null")
    repo.update_incident(
        incident,
        severity="high",
        diagnosis="covariate_shift",
        kinds=["data_drift", "data_quality"],
        last_window=3,
    )
    closed = repo.create_incident("titanic", 1, {}, "a blip")
    repo.update_incident(closed, state="resolved")
    ActionJournal(store).create("demo", ActionKind.ROLLBACK, incident_id=incident)


def test_monitor_the_model_performance_for_drift_means_the_only_model(
    assistant: Assistant,
) -> None:
    _model(assistant.store, "demo")
    assistant.store.set_monitoring("demo", False)
    reply = assistant.handle("Monitor the model performance for drift", Conversation("ann"))
    assert reply.status == "done", reply.message
    assert assistant.store.is_monitored("demo")
    assert "'the model' is 'demo', the only one" in reply.parsed.notes


def test_monitor_the_model_means_the_session_model_among_several(assistant: Assistant) -> None:
    _model(assistant.store, "demo")
    _model(assistant.store, "titanic")
    for name in ("demo", "titanic"):
        assistant.store.set_monitoring(name, False)
    asked = assistant.handle("Monitor the model performance for drift", Conversation("ann"))
    assert asked.status == "needs_input" and "Which model?" in asked.message
    talk = Conversation("ann", last_model="titanic")
    reply = assistant.handle("Monitor the model performance for drift", talk)
    assert reply.status == "done", reply.message
    assert assistant.store.is_monitored("titanic") and not assistant.store.is_monitored("demo")


def test_why_is_demo_failing(on_call: Assistant) -> None:
    reply = on_call.handle("why is demo failing?", Conversation("ann"))
    assert reply.status == "done", reply.message
    assert [i["id"] for i in reply.result["incidents"]] == [1]
    assert reply.result["window"] == 3 and len(reply.result["findings"]) == 2
    assert reply.message.splitlines() == [
        "demo has 1 open incident:",
        "  - incident #1 on demo (open, severity high, diagnosis covariate_shift, "
        "windows 2-3): Age drifted and Fare is mostly null",
        "Its last window (3) has 2 findings:",
        "  - data_drift on Age (psi 0.45 > threshold 0.2)",
        "  - data_quality on Fare (null_rate 0.6 > threshold 0.05)",
    ]
    quiet = on_call.handle("why is titanic failing?", Conversation("ann"))
    assert quiet.message.splitlines() == [
        "titanic has no open incident.",
        "Its last window (1) has no finding.",
    ]
    ghost = on_call.handle("why is ghost failing?", Conversation("ann"))
    assert ghost.status == "error" and "no model named 'ghost'" in ghost.message


def test_show_open_incidents(on_call: Assistant) -> None:
    reply = on_call.handle("show open incidents", Conversation("ann"))
    assert reply.status == "done", reply.message
    assert [(i["model"], i["state"]) for i in reply.result["incidents"]] == [("demo", "open")]
    assert reply.message.startswith("1 open incident:\n  - incident #1 on demo (open,")


def test_is_titanic_drifting(on_call: Assistant) -> None:
    reply = on_call.handle("is titanic drifting?", Conversation("ann"))
    assert reply.status == "done", reply.message
    assert reply.result["drifting"] is False
    assert reply.message == "no: titanic's last window (1) has no drift finding"
    demo = on_call.handle("is demo drifting?", Conversation("ann"))
    assert demo.result["drifting"] is True and demo.result["features"] == ["Age"]
    assert demo.message.splitlines() == [
        "yes: demo's last window (3) has 1 drift finding on 1 feature:",
        "  - data_drift on Age (psi 0.45 > threshold 0.2)",
    ]


def test_show_the_drift_report(on_call: Assistant) -> None:
    reply = on_call.handle("show the drift report", Conversation("ann", last_model="demo"))
    assert reply.status == "done", reply.message
    assert reply.result["features"] == [
        {
            "feature": "Age",
            "windows": 2,
            "first_window": 2,
            "last_window": 3,
            "max_score": 0.45,
            "statistic": "psi",
        }
    ]
    assert reply.message.splitlines() == [
        "drift report for demo up to window 3: 1 feature drifted",
        "  - Age: 2 windows (windows 2-3), highest psi 0.45",
    ]
    # two models and none named: it asks which rather than guessing
    asked = on_call.handle("show the drift report", Conversation("ann"))
    assert asked.status == "needs_input" and "Which model?" in asked.message


def test_what_did_the_agent_do_today(on_call: Assistant) -> None:
    reply = on_call.handle("what did the agent do today?", Conversation("ann"))
    assert reply.status == "done", reply.message
    assert [(a["kind"], a["incident_id"]) for a in reply.result["actions"]] == [("rollback", 1)]
    assert [i["id"] for i in reply.result["incidents"]] == [1, 2]
    lines = reply.message.splitlines()
    assert lines[0] == "today the agent opened 2 incidents and took 1 action:"
    assert lines[-1].startswith("  - action #1: rollback on demo for incident #1, pending at ")


def test_on_call_answers_over_http_and_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'oncall.sqlite'}"
    store = Store(url)
    _on_call_story(store)
    store.close()
    config = Settings(data_dir=tmp_path / "data", database_url=url, auth=False)
    app = create_app(config)
    app.include_router(routes_assistant.router)
    with TestClient(app) as client:
        response = client.post("/v1/assistant", json={"text": "why is demo failing?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["understood"]["intent"] == "oncall"
    assert body["understood"]["command"] == "mlwarden incidents --model demo"
    assert body["result"]["incidents"][0]["severity"] == "high"
    assert body["message"].startswith("demo has 1 open incident:")

    monkeypatch.setenv("MLWARDEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MLWARDEN_DATABASE_URL", url)
    get_settings.cache_clear()  # the CLI reads the environment once per process
    try:
        out = CliRunner().invoke(cli, ["ask", "is", "demo", "drifting?", "--json"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    answer = json.loads(out.output)
    assert answer["result"]["drifting"] is True and answer["result"]["window"] == 3


def test_clean_the_dataset_and_drop_non_numeric_columns(assistant: Assistant) -> None:
    talk = Conversation("ann")
    assert assistant.handle("load the titanic example", talk).status == "done"
    reply = assistant.handle("Clean the dataset and drop non-numeric columns", talk)
    assert reply.status == "done", reply.message
    assert reply.parsed.command == "mlwarden datasets clean titanic --drop-non-numeric"
    cleaned = assistant.datasets.frame("titanic", reply.result["dataset"]["version"])
    assert all(pd.api.types.is_numeric_dtype(cleaned[c]) for c in cleaned.columns)
    # the text columns are gone, not encoded: no Sex 0/1, no Embarked_S indicators
    assert not {"Name", "Sex", "Ticket", "Cabin", "Embarked"} & set(cleaned.columns)
    assert not any(c.startswith("Embarked_") for c in cleaned.columns)
    assert {"Survived", "Pclass", "Age", "Fare"} <= set(cleaned.columns)
    assert "drop column 'Sex': not numeric: dropped as asked" in reply.message
    # every passenger stays: rows equal on the numbers left are different people, and the raw
    # file repeats none (survival stays 38.4 %, not 41.3 % after 134 "duplicates" went)
    raw = assistant.datasets.frame("titanic", 1)
    assert len(cleaned) == len(raw) == 891 and "duplicate" not in reply.message
    assert cleaned["Survived"].mean() == pytest.approx(raw["Survived"].mean())


def test_download_the_processed_dataset(assistant: Assistant) -> None:
    talk = Conversation("ann")
    assistant.handle("load the titanic example", talk)
    unprocessed = assistant.handle("Download the processed dataset", talk)
    assert unprocessed.status == "error" and "has no cleaned version yet" in unprocessed.message
    cleaned = assistant.handle("clean it", talk)
    assert cleaned.status == "done", cleaned.message
    reply = assistant.handle("Download the processed dataset", talk)
    assert reply.status == "done", reply.message
    assert reply.parsed.arguments == {"dataset": "titanic", "format": "csv", "cleaned": True}
    assert reply.result["dataset"]["version"] == cleaned.result["dataset"]["version"] == 2
    assert reply.message == (
        f"titanic v2 ({cleaned.result['dataset']['rows']} rows) is ready to download as csv"
    )
