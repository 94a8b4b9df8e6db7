"""``/metrics`` of ``mlwarden serve --workers N`` counts every process's work, whichever answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from api_helpers import ELEC_ROW, deploy_elec
from prometheus_client.parser import text_string_to_metric_families

from mlwarden.server.background import ServerProcess
from mlwarden.serving.metrics import MULTIPROC_ENV, ServerMetrics, fresh_multiprocess_dir


def scrape(url: str) -> tuple[int, dict[str, list[float]]]:
    """The pid of the worker that answered, and every sample's values by name; no series may
    come twice (a store gauge exported by each process would)."""
    with httpx.Client(base_url=url, timeout=30) as fresh:
        # one connection: /health and /metrics are answered by the same process
        pid = fresh.get("/health").json()["replica"]["pid"]
        response = fresh.get("/metrics")
    assert response.status_code == 200, response.text
    samples: dict[str, list[float]] = {}
    series: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample.value)
            series.append((sample.name, tuple(sorted(sample.labels.items()))))
    assert len(series) == len(set(series)), "a series exported twice"
    return pid, samples


def predict(url: str, count: int) -> set[int]:
    """``count`` predictions, each on a new connection (the kernel spreads them over the
    workers); the pids that answered."""
    pids: set[int] = set()
    for _ in range(count):
        with httpx.Client(base_url=url, timeout=30) as fresh:
            pids.add(fresh.get("/health").json()["replica"]["pid"])
            response = fresh.post("/v1/models/elec/predict", json={"instances": [ELEC_ROW]})
            assert response.status_code == 200, response.text
    return pids


def assert_counts(samples: dict[str, list[float]], predictions: int) -> None:
    assert sum(samples["mlwarden_predictions_total"]) == predictions
    assert sum(samples["mlwarden_prediction_latency_seconds_count"]) == predictions
    assert samples["mlwarden_fleet_metrics_up"] == [1.0]


@pytest.mark.postgres
@pytest.mark.slow  # starts a server of two processes
def test_every_scrape_counts_the_predictions_of_every_worker(
    pg_url: str, tmp_path: Path, elec_artifacts: dict[str, bytes]
) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, database_url=pg_url, workers=2).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            deploy_elec(client, elec_artifacts)
        sent = 0
        pids: set[int] = set()
        while len(pids) < 2 and sent < 200:
            pids |= predict(server.url, 10)
            sent += 10
        assert len(pids) == 2, "one process answered everything"
        (folder,) = (data / "prometheus").iterdir()
        assert folder.name == f"serve-{server.process.pid}"  # type: ignore[union-attr]

        scrapers: set[int] = set()
        for attempt in range(40):
            pid, samples = scrape(server.url)
            scrapers.add(pid)
            assert_counts(samples, sent)
            if len(scrapers) == 2 and attempt >= 5:
                break
        assert scrapers == pids, "one process answered every scrape"

        # a worker that dies keeps its share: the total does not fall
        victim = sorted(pids)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        scraped = 0
        while time.monotonic() < deadline and scraped < 5:
            try:
                pid, samples = scrape(server.url)
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            assert pid != victim
            assert_counts(samples, sent)
            scraped += 1
        assert scraped == 5, "no worker answered after one was killed"
        predict(server.url, 5)
        sent += 5
        for _ in range(5):
            assert_counts(scrape(server.url)[1], sent)
    finally:
        server.stop()
    # a clean stop leaves no metric files behind
    assert list((data / "prometheus").iterdir()) == []


def test_apps_in_one_process_keep_their_own_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Single-process serving (and tests with several apps) stays in memory, one registry per
    app, even if the variable turns up after prometheus_client chose in-memory values."""
    monkeypatch.setenv(MULTIPROC_ENV, "/nonexistent")
    first, second = ServerMetrics(), ServerMetrics()
    assert first.multiprocess_dir is None
    first.predictions.labels("m", "1", "live").inc(3)
    assert first.predictions.labels("m", "1", "live")._value.get() == 3
    assert b'mlwarden_predictions_total{model="m",served_by="live",version="1"} 3.0' in (
        first.render()
    )
    assert b"mlwarden_predictions_total{" not in second.render()
    first.close()  # nothing to clean in memory


def test_a_fresh_folder_per_start_and_dead_starts_cleaned(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / "prometheus" / f"serve-{finished.stdout.strip()}"
    alive = tmp_path / "prometheus" / f"serve-{os.getppid()}"
    for folder in (dead, alive):
        folder.mkdir(parents=True)
        (folder / "counter_1.db").write_bytes(b"x")
    mine = tmp_path / "prometheus" / f"serve-{os.getpid()}"
    mine.mkdir()
    (mine / "counter_2.db").write_bytes(b"x")

    folder = fresh_multiprocess_dir(tmp_path)
    assert folder == mine and list(folder.iterdir()) == []  # this start's, emptied
    assert not dead.exists()  # its server is gone: its counts must not join a new start's
    assert (alive / "counter_1.db").exists()  # another server on this data dir still runs
