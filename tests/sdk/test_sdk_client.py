"""The SDK against a real server (Uvicorn on a free loopback port): log, feedback, predict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression

from mlwarden import Client
from mlwarden.datasets import load
from mlwarden.sdk import ClientError
from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.settings import Settings
from mlwarden.store import Store

FEATURES = ["Pclass", "Age", "SibSp", "Parch", "Fare"]
SPEC = {
    "name": "titanic",
    "task": "classification",
    "target": "Survived",
    "features": [{"name": name} for name in FEATURES],
}


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[tuple[BackgroundServer, Settings]]:
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, write_flush_interval_s=0.05
    )
    with BackgroundServer(create_app(settings)) as running:
        yield running, settings


def test_log_feedback_predict_round_trip(server: tuple[BackgroundServer, Settings]) -> None:
    running, settings = server
    frame = load("titanic")
    train = frame[FEATURES].fillna(frame[FEATURES].median())
    model = LogisticRegression(max_iter=500).fit(train, frame["Survived"])

    with Client(running.url, batch_size=100, flush_interval_s=0.05) as client:
        client.register_model(SPEC)
        version = client.upload_version(
            "titanic", model, metrics={"accuracy": 0.7}, reference=train.head(20)
        )
        assert version["number"] == 1 and version["has_reference"]
        client.deploy("titanic", 1, reason="sdk test")

        answer = client.predict("titanic", frame[FEATURES].iloc[0].to_dict())  # Age may be NaN
        assert answer["served_by"] == "live" and set(answer["probabilities"]) == {"0", "1"}
        answers = client.predict("titanic", frame[FEATURES].iloc[:5], key="k")
        assert len(answers) == 5

        # records of a model served elsewhere: a pandas frame (NaN ages) and a polars frame
        logged = frame[FEATURES].iloc[:250].assign(prediction=frame["Survived"].iloc[:250])
        ids = client.log("titanic", logged)
        more = client.log(
            "titanic",
            pl.from_pandas(logged.iloc[:50]).with_columns(pl.lit(7.5).alias("latency_ms")),
        )
        assert len(ids) == 250 and len(set(ids) | set(more)) == 300
        assert client.flush(30)
        labels = pd.DataFrame({"id": [*ids[:100], "ghost-1"], "label": [1] * 100 + [0]})
        client.feedback("titanic", labels)
        client.feedback("titanic", {more[0]: 0})
        assert client.flush(30)
        assert client.failures == []
        assert client.unknown_ids == ["ghost-1"]
        assert client.sent == {"records": 300, "feedback": 102}

        with pytest.raises(ClientError) as refused:
            client.predict("titanic", {"Pclass": "first"})
        assert refused.value.status == 422

        # why the live version answered the second passenger so: shares that add up
        why = client.explain("titanic", frame[FEATURES].iloc[1].to_dict())
        assert why["method"] == "shapley" and why["version"] == 1
        assert {c["feature"] for c in why["contributions"]} == set(FEATURES)
        total = sum(c["contribution"] for c in why["contributions"])
        assert total == pytest.approx(why["value"] - why["reference_value"])

    with Store(settings.resolved_database_url) as store:
        assert store.count_records("titanic") == 1 + 5 + 300
        assert store.count_feedback("titanic") == 101
        stored = {r["id"]: r for r in store.fetch_records("titanic")}
        first = stored[ids[0]]
        assert first["features"]["Age"] == logged["Age"].iloc[0]
        missing_age = logged["Age"].isna().to_numpy().nonzero()[0][0]
        assert stored[ids[missing_age]]["features"]["Age"] is None
        assert stored[more[1]]["latency_ms"] == 7.5


def test_refused_batches_are_reported_not_retried(
    server: tuple[BackgroundServer, Settings],
) -> None:
    running, _ = server
    with Client(running.url, flush_interval_s=0.05, max_retries=3) as client:
        client.register_model(SPEC)
        client.log("titanic", [{"features": {"Pclass": "first"}, "prediction": 1}])
        client.log("nobody", [{"features": {"x": 1}}])
        assert client.flush(30)
        kinds = sorted((f.model, f.error[:8]) for f in client.failures)
        assert kinds == [("nobody", "HTTP 404"), ("titanic", "HTTP 422")]


def test_unreachable_server_gives_up_after_retries(tmp_path: Path) -> None:
    from mlwarden.server.background import free_port

    client = Client(
        f"http://127.0.0.1:{free_port()}",
        max_retries=2,
        retry_backoff_s=0.01,
        flush_interval_s=0.01,
    )
    client.log("m", [{"features": {"x": 1.0}}])
    assert client.flush(30)
    client.close()
    assert len(client.failures) == 1 and "ConnectError" in client.failures[0].error
