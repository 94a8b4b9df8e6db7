"""Issue 13 item 4: free text cannot freeze the server.

The text is capped (422 over the cap), read in time linear in its length whatever it holds,
matched in the thread pool (the event loop keeps answering), and the routes need a viewer
token when the server requires tokens.
"""

from __future__ import annotations

import random
import string
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlwarden.api import routes_diagnose
from mlwarden.diagnose import free_text
from mlwarden.diagnose.facts import extract_facts
from mlwarden.diagnose.free_text import MAX_TEXT_CHARS
from mlwarden.diagnose.loader import load_playbooks
from mlwarden.diagnose.matcher import matcher_for
from mlwarden.server import create_app
from mlwarden.settings import Settings
from mlwarden.store import Store

SIZE = 20_000
NORMAL = (
    "the recommendation service is really slow since about noon, p95 is 3x normal and the pods "
    "are pegged at 100% cpu. error rate is fine, nulls in `tenure_months` went from 1% to 45% "
    "after the 14:00 deploy of v14; accuracy fell from 0.89 to 0.71 for 60% of requests. "
)


def _adversarial() -> dict[str, str]:
    rnd = random.Random(7)
    words = " ".join(
        "".join(rnd.choice(string.ascii_lowercase) for _ in range(7)) for _ in range(SIZE // 8)
    )
    patterns = {
        "digits": "1",
        "fives": "5",
        "null word": "null",
        "null then digit": "null 5",
        "percent": "1%",
        "dotted number": "1.",
        "backtick": "`a",
        "snake": "a_",
        "ratio": "1x ",
        "error word": "error ",
        "blanks": " \t",
        "unicode": "→é",
        "from spaces": "from" + " " * 50,
        "quotes": "'a' ",
        "open quotes": "'",
        "contractions": "isn't ",
        "apostrophes": "a'",
        "negated phrases": "no p99 is fine, ",
    }
    out = {name: (unit * (SIZE // len(unit) + 1))[:SIZE] for name, unit in patterns.items()}
    out["random words"] = words[:SIZE]
    return out


def _read(text: str) -> None:
    """Everything the matcher does with a text, without the length cap in front of it."""
    extract_facts(text, known_features=["tenure_months", "petal.length"])
    matcher_for(load_playbooks()).rank(text)


def _seconds(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):  # the least of three runs: the machine is shared
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def test_adversarial_texts_are_read_in_linear_time() -> None:
    _read("warm the playbook index")
    normal = (NORMAL * (SIZE // len(NORMAL) + 1))[:SIZE]
    reference = _seconds(lambda: _read(normal))
    # A quadratic expression costs hundreds of times a normal text at this size (20,000 digits
    # took 69 s before); linear ones stay within a small factor of it (about 3 measured: "1%1%"
    # has three times the tokens of prose).
    for name, text in _adversarial().items():
        took = _seconds(lambda text=text: _read(text))
        assert took <= 8 * reference + 0.05, (name, took, reference)


def test_feature_names_are_found_in_linear_time() -> None:
    text = ("a.a " * (MAX_TEXT_CHARS // 4))[:MAX_TEXT_CHARS]
    names = [f"a.a{i}" for i in range(routes_diagnose.MAX_FEATURES)]
    took = _seconds(lambda: extract_facts(text, known_features=names))
    assert took < 1.0, took
    facts = extract_facts(
        "the `petal.length` and tenure are odd, not petal.lengths",
        known_features=["petal.length", "TENURE", "pet"],
    )
    assert facts.features == ["TENURE", "petal.length"]


@pytest.fixture
def local_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path}/m.db")
    with TestClient(create_app(settings)) as client:
        yield client


def test_text_over_the_cap_is_a_clear_422(local_client: TestClient) -> None:
    start = time.perf_counter()
    over = local_client.post("/v1/diagnose", json={"text": "1" * SIZE})
    assert over.status_code == 422
    assert f"at most {MAX_TEXT_CHARS} characters" in over.json()["error"]
    at_cap = local_client.post("/v1/diagnose", json={"text": "1" * MAX_TEXT_CHARS})
    assert at_cap.status_code == 200 and at_cap.json()["matched"] is False
    assert time.perf_counter() - start < 2.0
    long_name = local_client.post(
        "/v1/diagnose", json={"text": "x is null", "features": ["f" * 201]}
    )
    assert long_name.status_code == 422 and "features.0" in long_name.json()["error"]


def test_matching_runs_off_the_event_loop(
    local_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    real = free_text.diagnose_text

    def slow(*args: object, **kwargs: object) -> object:
        started.set()
        release.wait(10)  # a matcher that holds its thread, as a long text would
        return real(*args, **kwargs)  # type: ignore[arg-type]

    # the route calls it through its lazy import of the module: patched there
    monkeypatch.setattr(free_text, "diagnose_text", slow)
    answers: list[int] = []
    worker = threading.Thread(
        target=lambda: answers.append(
            local_client.post("/v1/diagnose", json={"text": "p99 latency doubled"}).status_code
        )
    )
    worker.start()
    try:
        assert started.wait(10)
        start = time.perf_counter()
        assert local_client.get("/health").status_code == 200
        assert time.perf_counter() - start < 2.0
    finally:
        release.set()
        worker.join(10)
    assert answers == [200]


def test_routes_need_a_viewer_token_when_auth_is_on(tmp_path: Path, database_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, auth=True)
    with Store(settings.resolved_database_url) as store:
        viewer = {"Authorization": f"Bearer {store.create_token('viewer-token', 'viewer')}"}
    body = {"text": "every request returns score 0.5"}
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/diagnose", json=body).status_code == 401
        assert client.get("/v1/diagnose/scenarios").status_code == 401
        bad = {"Authorization": "Bearer mlw_not-a-token"}
        assert client.post("/v1/diagnose", json=body, headers=bad).status_code == 401
        answer = client.post("/v1/diagnose", json=body, headers=viewer)
        assert answer.status_code == 200
        assert answer.json()["matches"][0]["id"] == "constant_predictions"
        assert len(client.get("/v1/diagnose/scenarios", headers=viewer).json()) >= 25


def test_routes_answer_without_a_token_on_loopback_without_auth(local_client: TestClient) -> None:
    assert local_client.post("/v1/diagnose", json={"scenario": "memory_leak"}).status_code == 200
    assert local_client.get("/v1/diagnose/scenarios").status_code == 200
