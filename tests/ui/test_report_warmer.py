"""Open incidents' diagnoses made off the request path: the warmer of a running server diagnoses
an open incident as its windows close, so its page answers from memory; a page asked for
while a diagnosis is being made waits for that one instead of making a second. Diagnoses are
made in a process of their own and stored, so another server process reads them.

Most tests count the diagnoses made with ``diagnosis_process=False`` (a diagnosis made in the
worker process is out of the test's reach)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlwarden.agent import reports
from mlwarden.domain import DeploymentState, FeatureSpec, Finding, ModelSpec, Task
from mlwarden.server import create_app
from mlwarden.settings import Settings
from mlwarden.store import Store
from mlwarden.store.incidents import AgentRepo
from mlwarden.ui.report_cache import IncidentDiagnoses, server_diagnoses

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _model(store: Store) -> None:
    store.create_model(
        ModelSpec(name="m", task=Task.CLASSIFICATION, features=[FeatureSpec(name="x")], target="y")
    )
    store.add_version("m", kind="remote", endpoint={"url": "http://127.0.0.1:9/predict"})
    store.set_deployment("m", DeploymentState(live_version=1), actor="t", reason="first")


def _window(repo: AgentRepo, w: int, slow: bool) -> None:
    found = [
        Finding(
            kind="latency",
            detector="t",
            features=[],
            statistic="p99",
            score=3.0,
            threshold=1.5,
            window=w,
            message="slow",
        )
    ]
    repo.save_window(
        "m", w, T0 + timedelta(hours=w), {"latency_p99_ms": 90.0}, found if slow else []
    )


def _slow_incident(store: Store) -> tuple[AgentRepo, int]:
    """Model ``m`` with five windows, slow from the third, and an incident opened at it."""
    _model(store)
    repo = AgentRepo(store)
    for w in range(1, 6):
        _window(repo, w, slow=w >= 3)
    return repo, repo.create_incident("m", 3, {}, "slow answers")


def _counting(monkeypatch: pytest.MonkeyPatch, pause_s: float = 0.0) -> list[str]:
    """Count the diagnoses made, by the thread that made each."""
    made: list[str] = []
    real = reports.diagnose_stored_incident

    def counted(*args: Any) -> Any:
        made.append(threading.current_thread().name)
        time.sleep(pause_s)
        return real(*args)

    monkeypatch.setattr(reports, "diagnose_stored_incident", counted)
    return made


def _until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the warmer did not diagnose in time"
        time.sleep(0.02)


def test_the_server_diagnoses_an_open_incident_as_its_windows_close(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _counting(monkeypatch)
    repo, incident = _slow_incident(store)
    settings = Settings(
        data_dir=tmp_path / "data", auth=False, agent_interval_s=0.1, diagnosis_process=False
    )
    with TestClient(create_app(settings, store)) as client:
        diagnoses = server_diagnoses(client.app.state.mlwarden)  # type: ignore[attr-defined]
        # nobody asked for the page: the warmer diagnosed it, in its own thread
        _until(lambda: made == ["mlw-diagnoses"])
        assert client.get(f"/ui/incidents/{incident}").status_code == 200
        assert made == ["mlw-diagnoses"] and diagnoses.made == 1
        # a new window: the incident's signals after it grew, and it is diagnosed again. The
        # window and the incident are two writes, as the agent's are: a pass of the warmer
        # between them diagnoses what the window alone changed first (on a loaded machine,
        # now and then), so it is diagnosed once or twice, then never again until a change
        _window(repo, 6, slow=True)
        repo.update_incident(incident, last_window=6)
        _until(lambda: len(made) >= 2 and diagnoses.is_current(store, repo.get_incident(incident)))
        settled = len(made)
        assert settled in (2, 3)
        page = client.get(f"/ui/incidents/{incident}")
        assert page.status_code == 200 and "slow answers" in page.text
        time.sleep(0.3)  # three more of the warmer's passes: nothing new, nothing made
        assert made == ["mlw-diagnoses"] * settled and diagnoses.made == settled
        # closed, it is still kept (its signals' margin after it is filling): the warmer
        # diagnoses the change too, and the page makes nothing
        repo.update_incident(incident, state="resolved", event="resolved", text="recovered")
        _until(lambda: len(made) == settled + 1)
        assert "resolved" in client.get(f"/ui/incidents/{incident}").text
        assert made == ["mlw-diagnoses"] * (settled + 1)


def test_a_closed_incident_the_server_never_kept_is_diagnosed_at_its_first_view_only(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _counting(monkeypatch)
    repo, incident = _slow_incident(store)
    repo.update_incident(incident, state="resolved", event="resolved", text="recovered")
    settings = Settings(
        data_dir=tmp_path / "data", auth=False, agent_interval_s=0.1, diagnosis_process=False
    )
    with TestClient(create_app(settings, store)) as client:
        time.sleep(0.3)
        assert made == []  # not warmed: closed before this server started
        assert client.get(f"/ui/incidents/{incident}").status_code == 200
        assert len(made) == 1 and made[0] != "mlw-diagnoses"


def test_a_page_waits_for_the_diagnosis_being_made_rather_than_making_another(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _counting(monkeypatch, pause_s=0.3)
    _model(store)
    repo = AgentRepo(store)
    for w in range(1, 5):
        _window(repo, w, slow=True)
    incident_id = repo.create_incident("m", 2, {}, "slow answers")
    diagnoses = IncidentDiagnoses(separate_process=False)
    answers: list[Any] = []

    def view() -> None:
        answers.append(
            reports.incident_context(store, incident_id, diagnose=diagnoses)["diagnosis"]
        )

    views = [threading.Thread(target=view) for _ in range(3)]
    for thread in views:
        thread.start()
    for thread in views:
        thread.join(30)
    assert len(made) == 1 and diagnoses.made == 1
    assert len(answers) == 3 and answers[0] is answers[1] is answers[2]
    assert diagnoses.is_current(store, repo.get_incident(incident_id))


def _gated(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Diagnoses wait for the returned event once it is cleared (set: they run at once)."""
    gate = threading.Event()
    gate.set()
    real = reports.diagnose_stored_incident

    def waiting(*args: Any) -> Any:
        assert gate.wait(30), "the test never opened the gate"
        return real(*args)

    monkeypatch.setattr(reports, "diagnose_stored_incident", waiting)
    return gate


def test_at_the_moment_a_window_closes_the_page_shows_the_window_befores_diagnosis_at_once(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _gated(monkeypatch)
    repo, incident = _slow_incident(store)
    settings = Settings(
        data_dir=tmp_path / "data", auth=False, warm_diagnoses=False, diagnosis_process=False
    )
    with TestClient(create_app(settings, store)) as client:
        page = client.get(f"/ui/incidents/{incident}")
        assert page.status_code == 200 and 'id="diagnosis-stale"' not in page.text
        # a window closes and its diagnosis takes long (held by the gate)
        gate.clear()
        _window(repo, 6, slow=True)
        repo.update_incident(incident, last_window=6)
        started = time.monotonic()
        page = client.get(f"/ui/incidents/{incident}")
        assert time.monotonic() - started < 5  # the diagnosis never finished: not waited for
        assert page.status_code == 200 and "Diagnosis as of window 5" in page.text
        assert "slow answers" in page.text  # the page's facts are the present ones
        live = client.get(f"/ui/live/incidents/{incident}").json()
        assert live["diagnosis_current"] is False and live["last_window"] == 6
        # a report to download is the present state's: it waits for the diagnosis
        report: list[Any] = []
        download = threading.Thread(
            target=lambda: report.append(client.get(f"/ui/incidents/{incident}/report.json"))
        )
        download.start()
        time.sleep(0.3)
        assert not report
        gate.set()
        download.join(30)
        assert report and report[0].status_code == 200
        _until(lambda: client.get(f"/ui/live/incidents/{incident}").json()["diagnosis_current"])
        page = client.get(f"/ui/incidents/{incident}")
        assert 'id="diagnosis-stale"' not in page.text


def test_a_page_waits_when_the_headline_changed_so_header_and_diagnosis_agree(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _counting(monkeypatch, pause_s=0.6)
    repo, incident = _slow_incident(store)
    settings = Settings(
        data_dir=tmp_path / "data", auth=False, warm_diagnoses=False, diagnosis_process=False
    )
    with TestClient(create_app(settings, store)) as client:
        assert client.get(f"/ui/incidents/{incident}").status_code == 200
        _window(repo, 6, slow=True)
        repo.update_incident(incident, last_window=6, severity="critical")
        page = client.get(f"/ui/incidents/{incident}")
        assert page.status_code == 200 and 'id="diagnosis-stale"' not in page.text
        assert len(made) == 2  # made for the new severity, on the request path


def _never_here(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Diagnoses asked of this process (the server's) fail, and are listed by thread."""
    asked: list[str] = []

    def here(*_: Any) -> Any:
        asked.append(threading.current_thread().name)
        raise AssertionError("diagnosed in the server's process")

    monkeypatch.setattr(reports, "diagnose_stored_incident", here)
    return asked


def test_a_page_after_a_window_closes_makes_no_diagnosis_in_the_server_process(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _never_here(monkeypatch)
    repo, incident = _slow_incident(store)
    settings = Settings(data_dir=tmp_path / "data", auth=False, warm_diagnoses=False)
    with TestClient(create_app(settings, store)) as client:
        diagnoses = server_diagnoses(client.app.state.mlwarden)  # type: ignore[attr-defined]
        # until its process is up (its imports), a diagnosis is made here rather than waited for
        assert diagnoses.process.wait_started(store, 120)
        page = client.get(f"/ui/incidents/{incident}")
        assert page.status_code == 200 and 'class="explanation"' in page.text
        assert "could not be computed" not in page.text
        # a window closes: the page shows a diagnosis at once (the window before's, or the
        # new one if the process was quick), never made here
        _window(repo, 6, slow=True)
        repo.update_incident(incident, last_window=6)
        page = client.get(f"/ui/incidents/{incident}")
        assert page.status_code == 200 and 'class="explanation"' in page.text
        _until(lambda: client.get(f"/ui/live/incidents/{incident}").json()["diagnosis_current"])
        page = client.get(f"/ui/incidents/{incident}")
        assert 'id="diagnosis-stale"' not in page.text and "could not be computed" not in page.text
        # the report to download is the present state's, made there too
        report = client.get(f"/ui/incidents/{incident}/report.json")
        assert report.status_code == 200 and report.json()["diagnosis"]["model"] == "m"
        assert diagnoses.made == 2
    assert asked == []


def test_a_second_server_process_on_the_same_store_shows_the_stored_diagnosis(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _counting(monkeypatch)
    repo, incident = _slow_incident(store)
    settings = Settings(
        data_dir=tmp_path / "data", auth=False, warm_diagnoses=False, diagnosis_process=False
    )
    url = store.engine.url.render_as_string(hide_password=False)
    # two servers on one store, each with its own memory and connections (``--workers 2``)
    with (
        TestClient(create_app(settings, store)) as first,
        Store(url, migrate=False) as other,
        TestClient(create_app(settings, other)) as second,
    ):
        one = first.get(f"/ui/incidents/{incident}")
        assert one.status_code == 200 and len(made) == 1
        two = second.get(f"/ui/incidents/{incident}")
        assert two.status_code == 200 and len(made) == 1
        assert server_diagnoses(second.app.state.mlwarden).made == 0  # type: ignore[attr-defined]
        assert second.get(f"/ui/live/incidents/{incident}").json()["diagnosis_current"] is True
        explanation = one.text.split('class="explanation">')[1].split("</p>")[0]
        assert explanation and explanation in two.text
        # a window closes: the first server makes its diagnosis, the second reads it
        _window(repo, 6, slow=True)
        repo.update_incident(incident, last_window=6)
        assert second.get(f"/ui/live/incidents/{incident}").json()["diagnosis_current"] is False
        assert first.get(f"/ui/incidents/{incident}/report.json").status_code == 200
        assert len(made) == 2
        page = second.get(f"/ui/incidents/{incident}")
        assert 'id="diagnosis-stale"' not in page.text and len(made) == 2
        assert server_diagnoses(second.app.state.mlwarden).made == 0  # type: ignore[attr-defined]
