"""`mlwarden demo` applies every fault kind it announces (issue 14): one pass of a short
Titanic stream with every registered kind in a period of its own, sent over real HTTP to the
real server, and each period's stored records (features, answers, versions, latencies, times,
labels) or the demo's refusals show its fault; the clean first periods show none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mlwarden.scenarios.demo import Demo
from mlwarden.scenarios.faults import kinds
from mlwarden.scenarios.spec import Scenario
from mlwarden.server.background import free_port, serve_in_background
from mlwarden.store.repository import Store

CLEAN = range(0, 80)  # no fault before position 80
LENGTH = 30  # each fault's period; a multiple of the demo's batch of 10
FAULTS: list[dict[str, Any]] = [
    {"kind": "null_burst", "feature": "Fare", "rate": 1.0},
    {"kind": "unit_change", "feature": "Fare", "factor": 100},
    {"kind": "covariate_shift", "feature": "Fare", "shift": 2.0},
    {"kind": "category_new", "feature": "Embarked", "value": "Z", "rate": 1.0},
    {"kind": "concept_change", "region": "all"},
    {"kind": "label_shift", "positive_share": 1.0},
    {"kind": "schema_break", "feature": "Sex", "mode": "drop", "rate": 1.0},
    {"kind": "errors", "rate": 1.0},
    {"kind": "prediction_freeze", "constant": 1},
    {"kind": "latency", "add_ms": 300},
    {"kind": "arrival_delay", "delay_s": 3600},
    {"kind": "traffic_surge", "multiplier": 4},
    {"kind": "bad_deploy"},  # last: the bad version stays live afterwards
]
PERIODS = {
    fault["kind"]: range(80 + LENGTH * i, 80 + LENGTH * (i + 1)) for i, fault in enumerate(FAULTS)
}


def _scenario() -> Scenario:
    faults = [
        {**fault, "start": PERIODS[fault["kind"]].start, "end": PERIODS[fault["kind"]].stop}
        for fault in FAULTS
    ]
    faults[-1].pop("end")
    return Scenario.model_validate(
        {
            "name": "demo_faults",
            "dataset": "titanic",
            "target": "Survived",
            "task": "classification",
            "drop_columns": ["PassengerId", "Name", "Ticket", "Cabin"],
            "shuffle": True,
            "model": {"algorithm": "logistic_regression"},
            "fallback": {"algorithm": "gradient_boosting", "params": {"max_iter": 20}},
            "reference": [0, 391],
            "stream": [391, 891],
            # one window over the whole pass: the agent acts on nothing while it streams
            "window": 500,
            "rate": 100,
            "faults": faults,
        }
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Demo, dict[int, dict]]]:
    folder: Path = tmp_path_factory.mktemp("demo-faults")
    demo = Demo(
        _scenario(),
        folder / "demo",
        serve=serve_in_background,
        port=free_port(),
        say=lambda _: None,
    )
    settings = demo.prepare()
    server = serve_in_background(settings)
    demo.url = server.url
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            assert demo.stream_once(client, pace=False)
    finally:
        server.stop()  # flushes the record writer
        assert demo.model_server is not None
        demo.model_server.stop()
    with Store(settings.resolved_database_url, migrate=False) as store:
        records = {r["id"]: r for r in store.fetch_records(demo.model)}
    by_position = {p: records[rid] for p, rid in demo.answered.items()}
    yield demo, by_position


def _in(by_position: dict[int, dict], period: range) -> list[dict]:
    return [by_position[p] for p in period if p in by_position]


def test_the_test_covers_every_registered_fault_kind() -> None:
    assert sorted(PERIODS) == kinds()


def test_faults_on_rows_reach_the_stored_features(run: tuple[Demo, dict[int, dict]]) -> None:
    demo, by_position = run
    clean = demo.data.stream.reset_index(drop=True)
    fare = clean["Fare"].to_numpy(dtype=float)
    std = float(np.nanstd(demo.data.reference["Fare"].to_numpy(dtype=float)))

    def sent(kind: str, feature: str) -> list[tuple[int, Any]]:
        return [(p, by_position[p]["features"].get(feature)) for p in PERIODS[kind]]

    assert all(value is None for _, value in sent("null_burst", "Fare"))
    assert all(v == pytest.approx(fare[p] * 100) for p, v in sent("unit_change", "Fare"))
    assert all(v == pytest.approx(fare[p] + 2 * std) for p, v in sent("covariate_shift", "Fare"))
    assert {v for _, v in sent("category_new", "Embarked")} == {"Z"}
    for p in CLEAN:
        assert by_position[p]["features"]["Fare"] == pytest.approx(fare[p])
        assert by_position[p]["features"]["Embarked"] != "Z"


def test_faults_on_labels_reach_the_stored_labels(run: tuple[Demo, dict[int, dict]]) -> None:
    demo, by_position = run
    truth = demo.data.stream.reset_index(drop=True)["Survived"].to_numpy()
    flipped = [(by_position[p]["label"], truth[p]) for p in PERIODS["concept_change"]]
    assert all(label == 1 - int(clean) for label, clean in flipped)
    assert {by_position[p]["label"] for p in PERIODS["label_shift"]} == {1}
    assert [by_position[p]["label"] for p in CLEAN] == [int(v) for v in truth[CLEAN.start : 80]]


def test_a_schema_break_is_refused_by_the_gateway(run: tuple[Demo, dict[int, dict]]) -> None:
    demo, by_position = run
    assert not _in(by_position, PERIODS["schema_break"])
    assert demo.status.refused == LENGTH
    assert all(p in by_position for p in CLEAN)


def test_serving_faults_hit_the_live_model_server(run: tuple[Demo, dict[int, dict]]) -> None:
    demo, by_position = run
    clean = [by_position[p] for p in CLEAN]
    assert {(r["version"], r["served_by"]) for r in clean} == {(demo.faulty_version, "live")}
    # errors: every call failed, the fallback answered
    failing = _in(by_position, PERIODS["errors"])
    assert len(failing) == LENGTH and {r["served_by"] for r in failing} == {"fallback"}
    assert demo.model_server is not None and demo.model_server.failed == LENGTH // 10
    # a frozen model server answers its constant; the healthy one does not
    assert {r["prediction"] for r in _in(by_position, PERIODS["prediction_freeze"])} == {1}
    assert len({r["prediction"] for r in clean}) == 2
    # latency: measured by the gateway, so the records hold it
    assert min(r["latency_ms"] for r in _in(by_position, PERIODS["latency"])) >= 300
    # (the first calls of a pass may be slow on a loaded machine: a connection, a first load)
    assert np.median([r["latency_ms"] for r in clean]) < 300


def test_late_records_arrive_late(run: tuple[Demo, dict[int, dict]]) -> None:
    demo, by_position = run
    late = _in(by_position, PERIODS["arrival_delay"])
    assert len(late) == LENGTH and demo.status.shipped_late == LENGTH
    assert all((r["received_at"] - r["timestamp"]).total_seconds() > 3500 for r in late)
    assert all(
        abs((r["received_at"] - r["timestamp"]).total_seconds()) < 60
        for r in (by_position[p] for p in CLEAN)
    )


def test_a_surge_sends_faster_and_a_bad_deploy_serves_the_bad_version(
    run: tuple[Demo, dict[int, dict]],
) -> None:
    demo, by_position = run
    surge = PERIODS["traffic_surge"].start
    assert demo.interval_s(surge) == pytest.approx(demo.interval_s(0) / 4)
    bad = _in(by_position, PERIODS["bad_deploy"])
    assert len(bad) == LENGTH and {r["version"] for r in bad} == {demo.bad_version}
    assert demo.bad_version is not None and demo.bad_version != demo.faulty_version
