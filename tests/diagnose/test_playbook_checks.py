"""Every check a playbook cites runs as written.

- Every ``mlwarden ...`` command line (in a playbook's checks, and in the assistant's triage
  checklist) is parsed by the real command line's parser: an unknown command, option or
  argument fails here.
- Those that read the store run, their placeholders filled from a real incident: records of a
  real scikit-learn model stored, windows cut and evaluated by the real monitor, the incident
  opened by the real agent. Each ``--signal`` it names is one the monitor stores.
- Every SQL ``query`` names only tables of mlwarden's schema and runs on it, on SQLite (the
  real incident's database) and on PostgreSQL; a ``source_query`` (on the user's own systems)
  names none of mlwarden's tables, so nobody mistakes one for the other.
- Every Prometheus metric a check cites is one the server exports, with the labels it names.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
import typer
import typer.core
import typer.exceptions
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from mlwarden.agent.loop import Agent
from mlwarden.agent.monitor_source import MonitorSource
from mlwarden.agent.policy import load_policy_text
from mlwarden.cli.main import app
from mlwarden.datasets import load
from mlwarden.diagnose.checks import PLACEHOLDERS, fill
from mlwarden.diagnose.free_text import TRIAGE_CHECKLIST
from mlwarden.diagnose.loader import load_playbooks
from mlwarden.domain import DeploymentState, FeatureSpec, FeatureType, ModelSpec, Task
from mlwarden.server import create_app
from mlwarden.settings import Settings
from mlwarden.store import Store
from mlwarden.store.incidents import AgentRepo

MODEL = "elec"
NUMERIC = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
# a categorical feature derived from the time of day: unseen categories are measured on it
BAND = "band"
WINDOW = 200
START = datetime(2026, 11, 1, tzinfo=UTC)
# the commands that read the store run on the real incident; the others (reading files the
# user exports) are only parsed. A newly cited command must be put in one of the two.
RUN_ON_THE_STORE = {"signals", "records", "deployments", "report", "incidents"}
PARSED_ONLY = {"backtest"}
_SEPARATORS = {"|", "||", "&&", ";", "&"}
_TABLE = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_]\w*)\b(?!\s*\()", re.IGNORECASE)
_METRIC = re.compile(r"\bmlwarden_[a-z_]+\b")


@dataclass(frozen=True)
class Cited:
    """One command line or query a playbook (or the triage checklist) cites."""

    source: str  # the playbook's id and check title, for the failure message
    kind: str
    run: str


def _cited() -> list[Cited]:
    out = [
        Cited(f"{pb.id}: {c.title}", c.kind, c.run) for pb in load_playbooks() for c in pb.checks
    ]
    for line in TRIAGE_CHECKLIST:
        out += [
            Cited("triage checklist", "command", m)
            for m in re.findall(r"\((mlwarden [^)]*)\)", line)
        ]
    return out


CITED = _cited()
COMMANDS = [c for c in CITED if c.kind == "command"]
QUERIES = [c for c in CITED if c.kind == "query"]
SOURCE_QUERIES = [c for c in CITED if c.kind == "source_query"]


def mlwarden_argvs(line: str) -> list[list[str]]:
    """The argument lists of every ``mlwarden`` invocation in a shell line (pipes, ``&&``)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    argvs: list[list[str]] = []
    current: list[str] = []
    for token in [*lexer, ";"]:
        if token in _SEPARATORS:
            if current and current[0] == "mlwarden":
                argvs.append(current[1:])
            current = []
        else:
            current.append(token)
    return argvs


def parse(argv: list[str]) -> Any:
    """Parse ``argv`` as ``mlwarden`` would, down to the command it names (nothing runs): the
    Click command of Typer's own (Typer carries its own Click)."""
    command: Any = typer.main.get_command(app)
    context = command.make_context("mlwarden", list(argv))
    while isinstance(command, typer.core.TyperGroup):
        rest = [*getattr(context, "_protected_args", []), *context.args]
        name, sub, rest = command.resolve_command(context, rest)
        assert sub is not None and name is not None
        context = sub.make_context(name, rest, parent=context)
        command = sub
    return command


def tables(sql: str) -> set[str]:
    """The tables a query reads (table-valued functions such as json_each left out)."""
    return {name.lower() for name in _TABLE.findall(sql)}


def test_every_playbook_cites_mlwarden_commands_and_queries() -> None:
    """The test below would pass vacuously if the extraction found nothing."""
    argvs = [argv for c in COMMANDS for argv in mlwarden_argvs(c.run)]
    assert len(argvs) >= 30
    assert {argv[0] for argv in argvs} >= {"signals", "records", "deployments", "report"}
    assert len(QUERIES) >= 20 and len(SOURCE_QUERIES) >= 5


@pytest.mark.parametrize("cited", COMMANDS, ids=lambda c: c.source)
def test_every_cited_mlwarden_command_parses(cited: Cited) -> None:
    values = {"MODEL": "churn", "FEATURE": "price", "INCIDENT": 7}
    for argv in mlwarden_argvs(fill(cited.run, "command", values)):
        try:
            command = parse(argv)
        except typer.exceptions.TyperException as exc:  # Click's usage errors, Typer's copy
            why = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            pytest.fail(f"{cited.source}: `mlwarden {shlex.join(argv)}`: {why}")
        assert command.name in RUN_ON_THE_STORE | PARSED_ONLY, (cited.source, command.name)


# ---------------------------------------------------------------------------- a real incident


def _band(period: pd.Series) -> pd.Series:
    return pd.cut(period, [-0.1, 0.25, 0.75, 1.1], labels=["night", "day", "evening"]).astype(str)


def _model_rows(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame[NUMERIC].copy()
    rows[BAND] = _band(frame["period"])
    return rows


@dataclass
class Incident:
    url: str
    data_dir: Path  # the commands' data folder: a temporary one, never the working directory
    store: Store = field(repr=False)
    incident: dict[str, Any]
    feature: str  # the incident's leading feature
    signals: set[str]
    rows: pd.DataFrame = field(repr=False)  # the model's rows as sent


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Incident]:
    """A deployed logistic regression over the electricity data: six clean windows, then four in
    which 60 % of ``nswprice`` is null and a third of ``band`` a category never seen."""
    folder = tmp_path_factory.mktemp("playbook-checks")
    url = f"sqlite:///{folder / 'mlwarden.db'}"
    store = Store(url)
    elec = load("electricity")
    train = elec.iloc[:3000]
    prep = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), [BAND]),
        ]
    )
    model = make_pipeline(prep, LogisticRegression(max_iter=500))
    model.fit(_model_rows(train), train["target"])
    store.create_model(
        ModelSpec(
            name=MODEL,
            task=Task.CLASSIFICATION,
            features=[
                *(FeatureSpec(name=n) for n in NUMERIC),
                FeatureSpec(
                    name=BAND, type=FeatureType.CATEGORICAL, categories=["night", "day", "evening"]
                ),
            ],
            target="target",
            positive_class=1,
        )
    )
    sample = _model_rows(train.iloc[:600]).assign(target=train["target"].iloc[:600].to_numpy())
    version = store.add_version(
        MODEL,
        kind="sklearn",
        artifact=skops.io.dumps(model),
        reference_sample=sample.to_dict(orient="records"),
    ).number
    store.set_deployment(MODEL, DeploymentState(live_version=version), actor="test", reason="v1")
    stream = elec.iloc[20000 : 20000 + 10 * WINDOW].reset_index(drop=True)
    rows = _model_rows(stream)
    faulty = rows.index >= 6 * WINDOW
    rng = np.random.default_rng(0)
    rows.loc[faulty & (rng.random(len(rows)) < 0.6), "nswprice"] = np.nan
    rows.loc[faulty & (rng.random(len(rows)) < 0.33), BAND] = "holiday"
    proba = model.predict_proba(rows)
    records = []
    for i, row in rows.iterrows():
        when = START + timedelta(minutes=i)
        records.append(
            {
                "id": f"r{i:05d}",
                "model": MODEL,
                "version": version,
                "timestamp": when,
                "received_at": when,
                "features": {
                    k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()
                },
                "prediction": int(model.classes_[proba[i].argmax()]),
                "scores": {str(c): float(p) for c, p in zip(model.classes_, proba[i], strict=True)},
                "latency_ms": 3.0 + (i % 7),
                "served_by": "live",
            }
        )
    store.insert_records(records)
    store.add_feedback(MODEL, [(f"r{i:05d}", int(t)) for i, t in stream["target"].items()])
    source = MonitorSource(store, Settings(window_size=WINDOW, reference_size=WINDOW))
    Agent(store, load_policy_text("defaults: {mode: advisory}"), source=source).check_model(MODEL)
    opened = AgentRepo(store).list_incidents(MODEL)
    assert opened, "the null burst opened no incident"
    quality = next((i for i in opened if "nswprice" in (i["features"] or [])), opened[0])
    signals = {r["name"] for r in AgentRepo(store).signals(MODEL, limit=100_000)}
    try:
        yield Incident(url, folder / "data", store, quality, "nswprice", signals, rows)
    finally:
        store.close()


def _run(incident: Incident, argv: list[str]) -> Any:
    env = {
        "MLWARDEN_DATABASE_URL": incident.url,
        "MLWARDEN_DATA_DIR": str(incident.data_dir),
        "COLUMNS": "200",
    }
    return CliRunner().invoke(app, argv, env=env)


def _signal_names(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, token in enumerate(argv[:-1]) if token in ("--signal", "-s")]


def _stored(signal: str, stored: set[str]) -> bool:
    return any(n == signal or n.startswith(signal + ".") for n in stored)


def test_the_incident_is_real(incident: Incident) -> None:
    assert incident.incident["model"] == MODEL
    assert {"null_rate.nswprice", f"unseen_rate.{BAND}", "drift.psi.nswprice"} <= incident.signals


@pytest.mark.parametrize(
    "cited",
    [c for c in COMMANDS if any(a[0] in RUN_ON_THE_STORE for a in mlwarden_argvs(c.run))],
    ids=lambda c: c.source,
)
def test_every_cited_store_command_runs_on_a_real_incident(
    incident: Incident, cited: Cited
) -> None:
    # FEATURE is the incident's feature, or, for a signal measured only on another kind of
    # feature (unseen categories), the first feature of the model it is stored for
    candidates = [incident.feature, *incident.rows.columns]
    for feature in candidates:
        values = {"MODEL": MODEL, "FEATURE": feature, "INCIDENT": incident.incident["id"]}
        argvs = [a for a in mlwarden_argvs(fill(cited.run, "command", values))]
        if all(_stored(s, incident.signals) for a in argvs for s in _signal_names(a)):
            break
    else:
        pytest.fail(f"{cited.source}: a signal of {cited.run!r} is stored for no feature")
    for argv in argvs:
        if argv[0] not in RUN_ON_THE_STORE:
            continue
        assert not set(PLACEHOLDERS) & set(" ".join(argv).replace(".", " ").split()), argv
        result = _run(incident, argv)
        assert result.exit_code == 0, (cited.source, argv, result.output)
        assert result.output.strip(), (cited.source, argv)
        if "--json" in argv:
            json.loads(result.output)  # what a check pipes into jq is JSON


def test_the_signals_command_shows_the_null_burst_and_refuses_an_unknown_signal(
    incident: Incident,
) -> None:
    argv = ["signals", MODEL, "--signal", "null_rate.nswprice", "--last", "10", "--json"]
    result = _run(incident, argv)
    assert result.exit_code == 0, result.output
    windows = json.loads(result.output)["windows"]
    rates = [w["signals"]["null_rate.nswprice"] for w in windows]
    assert len(rates) == 10
    assert max(rates[:6]) == 0.0 and min(rates[6:]) > 0.45  # the burst, window by window
    unknown = _run(incident, ["signals", MODEL, "--signal", "mean_confidence"])
    assert unknown.exit_code == 1
    assert "no signal mean_confidence" in unknown.output and "null_rate.*" in unknown.output


def test_the_incident_report_fills_the_placeholders_of_its_checks(incident: Incident) -> None:
    result = _run(incident, ["report", str(incident.incident["id"]), "--format", "json"])
    assert result.exit_code == 0, result.output
    checks = json.loads(result.output)["checks"]
    assert checks
    for check in checks:
        words = set(re.findall(r"[A-Z]+", check["run"] + " " + check["title"]))
        assert not words & {"MODEL", "INCIDENT"}, check
    runs = " ".join(c["run"] for c in checks)
    assert f"mlwarden signals {MODEL} " in runs or f"m.name = '{MODEL}'" in runs


# ---------------------------------------------------------------------------- SQL


def _schema(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_store_queries_name_only_tables_of_the_schema(incident: Incident) -> None:
    schema = _schema(incident.url)
    assert {"records", "feedback", "models", "signals"} <= schema
    for cited in QUERIES:
        named = tables(cited.run)
        assert named, cited.source
        assert named <= schema, f"{cited.source}: {sorted(named - schema)} is not in the schema"
    for cited in SOURCE_QUERIES:
        assert not tables(cited.run) & schema, f"{cited.source}: names a table of mlwarden's"


def _run_queries(url: str, feature_of: dict[str, str]) -> dict[str, list[Any]]:
    """Every store query's rows on the database at ``url``, placeholders filled."""
    engine = create_engine(url)
    out = {}
    try:
        with engine.connect() as conn:
            for cited in QUERIES:
                feature = feature_of.get(cited.source.split(":")[0], "nswprice")
                sql = fill(cited.run, "query", {"MODEL": MODEL, "FEATURE": feature})
                out[cited.source] = list(conn.execute(text(sql)))
    finally:
        engine.dispose()
    return out


# the categorical feature for the playbook that is about categories
CATEGORICAL_PLAYBOOKS = {"unseen_categories": BAND}


def test_store_queries_run_on_the_real_incident_sqlite(incident: Incident) -> None:
    results = _run_queries(incident.url, CATEGORICAL_PLAYBOOKS)
    assert all(rows is not None for rows in results.values())
    nulls = next(rows for source, rows in results.items() if source.startswith("feature_null"))
    rates = [row.null_rate for row in nulls]
    assert max(rates) > 0.45 and min(rates) == 0.0  # the burst, hour by hour
    values = next(rows for source, rows in results.items() if source.startswith("unseen_cat"))
    assert "holiday" in {row.value for row in values}


@pytest.mark.postgres
def test_store_queries_run_on_postgres(incident: Incident, pg_url: str) -> None:
    """The same queries on PostgreSQL, over the same model and a slice of its records."""
    with Store(pg_url) as pg:
        pg.create_model(incident.store.get_model(MODEL))
        info = incident.store.get_version(MODEL, 1)
        pg.add_version(
            MODEL,
            kind="sklearn",
            artifact=incident.store.load_artifact(MODEL, 1),
            reference_sample=incident.store.reference_sample(MODEL, info.number),
        )
        kept = incident.store.records_by_arrival(MODEL, limit=300)
        kept += incident.store.records_by_arrival(MODEL, newest_first=True, limit=300)
        for row in kept:
            row.update(model=MODEL)
            row.pop("label")
        pg.insert_records(kept)
        pg.add_feedback(MODEL, [(r["id"], 1) for r in kept[:100]])
    results = _run_queries(pg_url, CATEGORICAL_PLAYBOOKS)
    assert len(results) == len(QUERIES)
    nulls = next(rows for source, rows in results.items() if source.startswith("feature_null"))
    assert max(row.null_rate for row in nulls) > 0.45


# ---------------------------------------------------------------------------- Prometheus


def test_cited_prometheus_metrics_are_exported(incident: Incident, tmp_path: Path) -> None:
    cited = [c for c in CITED if _METRIC.search(c.run)]
    assert cited
    settings = Settings(data_dir=tmp_path, database_url=incident.url)
    with TestClient(create_app(settings)) as client:
        row = incident.rows.iloc[0].to_dict()
        answer = client.post(f"/v1/models/{MODEL}/predict", json={"instances": row})
        assert answer.status_code == 200, answer.text
        exported = client.get("/metrics").text
    for check in cited:
        for metric in _METRIC.findall(check.run):
            lines = [line for line in exported.splitlines() if line.startswith(metric + "{")]
            assert lines, f"{check.source}: {metric} is not exported"
            labels = set(re.findall(r"(\w+)=", lines[0]))
            # the labels the expression selects on or sums by (Prometheus adds instance, le)
            wanted = set(re.findall(r"(\w+)=~?\"", check.run))
            for by in re.findall(r"by \(([^)]*)\)", check.run):
                wanted |= {w.strip() for w in by.split(",")}
            assert wanted - {"instance"} <= labels, (check.source, metric, labels)
