"""A model that reads free text, end to end over real HTTP (issue 15: "there is no text feature
type").

A scikit-learn pipeline reads the bundled Titanic passengers' names with a TF-IDF vectorizer
(beside their sex, class, age and fare): it is registered with ``Name`` declared as text, served
by the gateway, its records monitored by the agent. A window of held-out passengers raises no
text finding; names sent as empty strings raise the empty-text burst, an incident and its
diagnosis; names filled with ticket numbers (text of another kind) raise the text drift
findings. A number or an oversized text in the field is refused with an error naming the feature
and the reason, and refuses nothing else.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from empty_sqlite import migrated_sqlite
from mlwarden.agent.investigate import InvestigationRequest, rows_from_file, run_investigation
from mlwarden.agent.loop import Agent
from mlwarden.agent.monitor_source import MonitorSource
from mlwarden.agent.policy import Policy
from mlwarden.agent.remedies.retrain import dump_estimator
from mlwarden.agent.reports import diagnose_stored_incident
from mlwarden.datasets import load
from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.settings import Settings
from mlwarden.store import Store
from mlwarden.store.incidents import AgentRepo

MODEL = "titanic-names"
INPUTS = ["Name", "Sex", "Pclass", "Age", "Fare"]
WINDOW = 100
SPEC = {
    "name": MODEL,
    "task": "classification",
    "target": "Survived",
    "positive_class": 1,
    "features": [
        {"name": "Name", "type": "text", "max_length": 200},
        {"name": "Sex", "type": "categorical"},
        {"name": "Pclass", "type": "integer"},
        {"name": "Age", "type": "numeric"},
        {"name": "Fare", "type": "numeric"},
    ],
}


def _pipeline() -> Pipeline:
    columns = ColumnTransformer(
        [
            ("name", TfidfVectorizer(), "Name"),
            ("sex", OneHotEncoder(handle_unknown="ignore"), ["Sex"]),
            ("numbers", SimpleImputer(strategy="median"), ["Pclass", "Age", "Fare"]),
        ]
    )
    return Pipeline([("columns", columns), ("model", LogisticRegression(max_iter=1000))])


def _instances(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in rows[INPUTS].to_dict(orient="records")
    ]


def _predict(http: httpx.Client, rows: pd.DataFrame) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    for start in range(0, len(rows), 50):
        response = http.post(
            f"/v1/models/{MODEL}/predict",
            json={"instances": _instances(rows.iloc[start : start + 50])},
        )
        assert response.status_code == 200, response.text
        answers += response.json()["predictions"]
    return answers


def _text_findings(store: Store) -> dict[int, set[str]]:
    """The checks of the text findings on ``Name``, by window."""
    found: dict[int, set[str]] = {}
    for f in AgentRepo(store).findings(MODEL, limit=10_000):
        evidence = f["evidence"] if isinstance(f["evidence"], dict) else json.loads(f["evidence"])
        features = f["features"] if isinstance(f["features"], list) else json.loads(f["features"])
        if "Name" in features:
            found.setdefault(int(f["window"]), set()).add(str(evidence.get("check")))
    return found


@pytest.fixture(scope="module")
def titanic() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = load("titanic").sample(frac=1.0, random_state=0).reset_index(drop=True)
    return rows.iloc[:591], rows.iloc[591:]


def _settings(tmp_path: Path, reference_size: int) -> Settings:
    """A server without auth on a SQLite file, windows of ``WINDOW`` records."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        write_flush_interval_s=0.05,
        auth=False,
        window_size=WINDOW,
        reference_size=reference_size,
        window_settle_s=0.0,
    )


def test_a_tfidf_model_on_titanic_names_is_served_monitored_and_diagnosed_over_http(
    tmp_path: Path, titanic: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, held_out = titanic
    pipeline = _pipeline().fit(train[INPUTS], train["Survived"])
    settings = _settings(tmp_path, len(train))
    app = create_app(settings)
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        state = app.state.mlwarden
        store: Store = state.store
        _deploy(http, pipeline, train)
        assert store.get_model(MODEL).features[0].type == "text"

        # raw rows in, the pipeline's own answers out, the text recorded as sent
        clean = held_out.iloc[: 2 * WINDOW]
        answers = _predict(http, clean)
        expected = pipeline.predict(clean[INPUTS])
        assert [a["prediction"] for a in answers] == expected.tolist()

        # a number and an oversized text are refused, naming the feature and the reason
        bad = _instances(held_out.iloc[:2])
        bad[0]["Name"] = 42
        refused = http.post(f"/v1/models/{MODEL}/predict", json={"instances": bad})
        assert refused.status_code == 422
        error = refused.json()["detail"]["errors"][0]
        assert (error["row"], error["field"], error["expected"]) == (0, "Name", "text (a string)")
        long = _instances(held_out.iloc[:1])
        long[0]["Name"] = "Smith, Mr. " + "John " * 60
        too_long = http.post(f"/v1/models/{MODEL}/predict", json={"instances": long})
        assert too_long.status_code == 422
        assert "at most 200 characters" in too_long.json()["detail"]["errors"][0]["expected"]
        # log ingestion keeps the good rows of an upload and reports the bad one
        lines = [dict(row, id=f"log-{i}") for i, row in enumerate(_instances(held_out.iloc[:3]))]
        lines[1]["Name"] = {"first": "Owen"}
        ingested = http.post(
            f"/v1/models/{MODEL}/records?partial=true",
            content="\n".join(json.dumps(line) for line in lines).encode(),
            headers={"content-type": "application/x-ndjson"},
        )
        assert ingested.status_code == 200, ingested.text
        report = ingested.json()
        assert report["stored"] == 2 and "Name" in json.dumps(report)
        assert state.writer.flush(timeout=30)
        stored = store.count_records(MODEL)

        # three windows of names lost upstream (sent as "")
        agent = Agent(
            store, Policy({"defaults": {"mode": "advisory"}}), source=MonitorSource(store, settings)
        )
        blank = held_out.iloc[: 3 * WINDOW].assign(Name="")
        _predict(http, pd.concat([held_out.iloc[2 * WINDOW :], blank]))
        assert state.writer.flush(timeout=30) and store.count_records(MODEL) > stored
        agent.check_model(MODEL)
        found = _text_findings(store)
        # windows 0 and 1: held-out passengers (and the two logged rows), no text finding
        assert 1 in _windows(store) and not found.get(0) and not found.get(1), found
        # the blank names: an empty-text burst, window after window, and its incident
        assert sum("empty_burst" in checks for checks in found.values()) >= 3, found
        quality = _diagnosis(store, "quality")
        assert "Name: empty rate" in " ".join(quality.symptoms)
        assert "feature_null_explosion" in [m.id for m in quality.matches[:3]]

        # then three windows of names filled with ticket numbers ("A/5 21171")
        tickets = held_out.iloc[:WINDOW].assign(Name=train["Ticket"].to_numpy()[:WINDOW])
        _predict(http, pd.concat([tickets] * 3))
        assert state.writer.flush(timeout=30)
        agent.check_model(MODEL)
        found = _text_findings(store)
        last = max(_windows(store))
        assert {"text_oov", "text_length"} <= found[last] and "empty_burst" not in found[last]
        drift = _diagnosis(store, "drift")
        said = " ".join(drift.symptoms)
        assert "of its words are unknown to the reference vocabulary" in said
        assert "covariate_drift" in [m.id for m in drift.matches[:3]]


def _deploy(http: httpx.Client, pipeline: Pipeline, train: pd.DataFrame) -> None:
    """Register the model with ``Name`` declared as text, upload the pipeline with its training
    rows as the reference, and deploy it."""
    assert http.post("/v1/models", json=SPEC).status_code == 201
    reference = train[[*INPUTS, "Survived"]].astype(object).where(train.notna(), None)
    uploaded = http.post(
        f"/v1/models/{MODEL}/versions",
        files={"file": ("v1.skops", dump_estimator(pipeline), "application/octet-stream")},
        data={"reference": json.dumps(reference.to_dict(orient="records"))},
    )
    assert uploaded.status_code == 201, uploaded.text
    deployed = http.put(f"/v1/models/{MODEL}/deployment", json={"live_version": 1})
    assert deployed.status_code == 200, deployed.text


def _windows(store: Store) -> set[int]:
    return {int(s["window"]) for s in AgentRepo(store).signals(MODEL, None, 10_000)}


def _diagnosis(store: Store, scope: str) -> Any:
    """The diagnosis of the model's open incident of ``scope``."""
    repo = AgentRepo(store)
    opened = [i for i in repo.list_incidents(MODEL, None, 100) if i["scope"] == scope]
    assert opened, f"no {scope} incident: {repo.list_incidents(MODEL, None, 100)}"
    incident = repo.get_incident(opened[0]["id"])
    findings = repo.findings(MODEL, limit=10_000)
    return diagnose_stored_incident(store, incident, findings, store.model_id(MODEL))


def test_investigating_the_url_with_a_sample_holding_names_probes_and_watches_the_text(
    tmp_path: Path, titanic: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """``mlwarden investigate URL --sample FILE``: the sample's ``Name`` column is typed text by
    the rule (nothing declares it), its lengths and words are the baseline, every window is
    compared with it, and a healthy endpoint gets no text finding."""
    train, held_out = titanic
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        write_flush_interval_s=0.05,
        auth=False,
    )
    sample = tmp_path / "passengers.csv"
    held_out[[*INPUTS, "Survived"]].to_csv(sample, index=False)
    app = create_app(settings)
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        _deploy(http, _pipeline().fit(train[INPUTS], train["Survived"]), train)
        request = InvestigationRequest(
            url=f"{server.url}/v1/models/{MODEL}/predict",
            rows=rows_from_file(sample),
            target="Survived",
            baseline=200,
            windows=2,
            window_size=100,
            rate_per_s=1000,
        )
        with Store(migrated_sqlite(tmp_path / "investigations.sqlite")) as store:
            record = run_investigation(store, request, actor="test", settings=settings)
    assert record["state"] == "done", record["error"]
    result = record["result"]
    names = result["baseline"]["text"]["Name"]
    assert 20 < names["mean_length"] < 35 and names["empty_rate"] == 0.0
    assert "mr" in names["top_tokens"] and 0.2 < names["oov_rate"] < 0.7
    for window in result["windows"]:
        assert 0.0 <= window["signals"]["text_oov.Name"] < 1.0
        assert not [f for f in window["findings"] if "Name" in f["features"]], window["findings"]


def _feature_data(http: httpx.Client, feature: str) -> tuple[str, dict[str, Any]]:
    """The feature page of ``feature`` and the distribution its chart is drawn from."""
    page = http.get(f"/ui/models/{MODEL}/features/{feature}")
    assert page.status_code == 200, page.text
    found = re.search(
        r'<script type="application/json" id="feature-data">(.*?)</script>', page.text, re.S
    )
    assert found is not None
    return page.text, json.loads(html.unescape(found.group(1)))


def test_the_feature_page_shows_a_text_feature_by_its_lengths_empty_rate_and_unknown_words(
    tmp_path: Path, titanic: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """A text feature's page is not a list of its most frequent values (every name is
    distinct): it shows its length histogram on the reference's bins, its empty rate and its
    share of unknown words, reference against recent records, and the reference's most frequent
    words. Recent names half replaced by ticket numbers and blanks move all three; a categorical
    feature's page is unchanged."""
    train, held_out = titanic
    pipeline = _pipeline().fit(train[INPUTS], train["Survived"])
    app = create_app(_settings(tmp_path, len(train)))
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        _deploy(http, pipeline, train)
        recent = held_out.iloc[:WINDOW].copy()
        tickets = recent.index[: WINDOW // 2]
        recent.loc[tickets, "Name"] = train["Ticket"].to_numpy()[: len(tickets)]
        recent.loc[recent.index[-10:], "Name"] = ""
        _predict(http, recent)
        assert app.state.mlwarden.writer.flush(timeout=30)

        page, text = _feature_data(http, "Name")
        assert text["kind"] == "text" and text["reference_n"] == len(train)
        assert text["recent_n"] == WINDOW
        # the length histogram: both samples on the reference's bins, shares of each
        assert len(text["x"]) == len(text["reference"]) == len(text["recent"]) >= 10
        assert sum(text["reference"]) == pytest.approx(1, abs=1e-4)
        assert sum(text["recent"]) == pytest.approx(1, abs=1e-4)
        names = train["Name"].str.len()
        short = [i for i, label in enumerate(text["x"]) if label.startswith("<")]
        assert short == [0] and text["x"][0] == f"< {names.min()}"
        assert text["reference"][0] == 0 and text["recent"][0] >= 0.5  # tickets and blanks
        # empty rate and unknown words, reference against recent
        ref, new = text["rates"]["reference"], text["rates"]["recent"]
        assert ref["empty_rate"] == 0 and new["empty_rate"] == pytest.approx(10 / WINDOW)
        assert 0 < ref["oov_rate"] < 0.5 < new["oov_rate"]
        assert ref["mean_length"] == pytest.approx(names.mean(), abs=1e-3)
        # the reference's most frequent words (titles), with their share in each sample
        words = dict(zip(text["words"]["x"], text["words"]["reference"], strict=True))
        assert {"mr", "miss", "mrs"} <= set(words) and words["mr"] > 0.05
        recent_mr = text["words"]["recent"][text["words"]["x"].index("mr")]
        assert recent_mr < words["mr"]
        # no top-values list: no name is a bar of the chart
        assert not set(text["x"]) & set(train["Name"]) and "values" not in text
        assert 'id="text-rates"' in page and "unknown words" in page
        assert 'id="text-words"' in page and "<td>mr</td>" in page

        # a categorical feature is still counted per value
        page, sex = _feature_data(http, "Sex")
        assert sex["kind"] == "categorical" and set(sex["x"]) == {"male", "female"}
        assert "rates" not in sex and 'id="text-rates"' not in page
