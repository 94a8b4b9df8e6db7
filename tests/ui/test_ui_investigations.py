"""The investigations' pages over real HTTP (Uvicorn, auth on, SQLite and PostgreSQL): an
operator starts one from the form with a sample file against a real scikit-learn model behind
its own HTTP server, follows it on the live JSON while it probes, and finds its diagnosis,
recommendations and report on its page once the model has degraded; bad forms, roles and CSRF
are refused, and so are reports of investigations that have none."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.settings import Settings
from mlwarden.store import Store
from model_http import ModelServer, probe_policy, sample_rows, until

SIZES = {"baseline": "150", "windows": "3", "window_size": "60", "rate_per_s": "100"}
TOTAL = 150 + 3 * 60


class Served:
    def __init__(self, url: str, store: Store, tokens: dict[str, str]) -> None:
        self.url = url
        self.store = store
        self.tokens = tokens


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[Served]:
    policy = probe_policy(tmp_path)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        auth=True,
        agent_policy=policy,
        agent_in_server=False,
        write_flush_interval_s=0.05,
    )
    store = Store(settings.resolved_database_url)
    tokens = {
        "operator": store.create_token("olivia", "operator"),
        "viewer": store.create_token("victor", "viewer"),
    }
    with BackgroundServer(create_app(settings, store)) as server:
        yield Served(server.url, store, tokens)
    store.close()


@pytest.fixture
def model() -> Iterator[ModelServer]:
    served = ModelServer()
    yield served
    served.close()


def signed_in(served: Served, role: str) -> httpx.Client:
    """A browser-like client (cookies kept) signed in with ``role``'s token."""
    client = httpx.Client(base_url=served.url, timeout=30)
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce is not None
    answer = client.post(
        "/ui/login",
        data={"token": served.tokens[role], "nonce": nonce.group(1), "next": "/ui/"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/", answer.text
    return client


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'data-csrf="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def sample_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def start(
    client: httpx.Client,
    csrf: str,
    url: str,
    *,
    sample: bytes | None,
    name: str = "s.csv",
    **extra: str,
) -> httpx.Response:
    files = {"sample": (name, sample or b"", "text/csv")}
    data = {"csrf": csrf, "url": url, "target": "label", **SIZES, **extra}
    return client.post("/ui/investigations", data=data, files=files, follow_redirects=False)


def test_an_operator_starts_an_investigation_and_follows_it_to_its_report(
    served: Served, model: ModelServer
) -> None:
    model.degrade_after(150 + 60, "collapse")
    client = signed_in(served, "operator")
    empty = client.get("/ui/investigations")
    assert empty.status_code == 200
    assert 'href="/ui/investigations" aria-current="page">Investigations</a>' in empty.text
    assert "No investigation yet" in empty.text and 'id="investigate-form"' in empty.text

    started = start(client, csrf_of(empty), model.url, sample=sample_csv(sample_rows()))
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    found = re.fullmatch(r"/ui/investigations/(\d+)\?msg=.*", location)
    assert found is not None, location
    number = int(found.group(1))
    page = client.get(location)
    assert page.status_code == 200
    assert f"Investigation #{number} started: {TOTAL} probes." in page.text
    assert 'id="inv-progress"' in page.text and 'id="pending-note"' in page.text
    assert f'data-live-url="/ui/live/investigations/{number}"' in page.text

    # the live JSON the page polls: probes counted while it runs, then its windows' findings
    def live() -> dict[str, Any]:
        answer = client.get(f"/ui/live/investigations/{number}")
        assert answer.status_code == 200
        return dict(answer.json())

    midway = until(
        lambda: (d := live())["state"] == "running" and 0 < d["progress"]["done"] < TOTAL and d
    )
    assert midway["finished"] is False and midway["progress"]["total"] == TOTAL
    ended = until(lambda: (d := live())["finished"] and d)
    assert ended["state"] == "done", ended["error"]
    assert [w["window"] for w in ended["windows"]] == [0, 1, 2]
    assert ended["windows"][0]["findings"] == []  # healthy until the 210th call
    assert any(f["kind"] == "prediction_drift" for f in ended["windows"][1]["findings"])

    done = client.get(f"/ui/investigations/{number}")
    assert done.status_code == 200
    text = done.text
    assert 'id="pending-note"' not in text and "Confidence collapse" in text
    assert 'id="checks"' in text and "<code>" in text  # the playbook's checks, with commands
    assert re.search(r"<strong>fallback</strong>", text) and "<strong>retrain</strong>" in text
    assert f'href="/ui/investigations/{number}/report.md"' in text
    assert "Answers in the baseline" in text and "confidence" in text

    markdown = client.get(f"/ui/investigations/{number}/report.md")
    assert markdown.status_code == 200 and markdown.text.startswith("# Incident report")
    assert "attachment" in markdown.headers["content-disposition"]
    as_json = client.get(f"/ui/investigations/{number}/report.json").json()
    assert as_json["matches"][0]["id"] == "confidence_collapse"
    as_html = client.get(f"/ui/investigations/{number}/report.html")
    assert as_html.headers["content-type"].startswith("text/html") and "<html" in as_html.text

    records = client.get(f"/ui/investigations/{number}/records.json", params={"limit": 100})
    assert records.status_code == 200 and "attachment" in records.headers["content-disposition"]
    assert records.json()["total"] == TOTAL and records.json()["next_offset"] == 100
    assert len(records.json()["records"]) == 100 and 'id="records-link"' in text
    last = client.get(f"/ui/investigations/{number}/records.json", params={"offset": 300})
    assert len(last.json()["records"]) == 30 and last.json()["next_offset"] is None
    bad = client.get(f"/ui/investigations/{number}/records.json", params={"limit": 5001})
    assert bad.status_code == 422 and "query.limit" in bad.json()["error"]

    listed = client.get("/ui/investigations").text
    row = re.search(rf'<tr data-id="{number}" data-state="done">(.*?)</tr>', listed, re.S)
    assert row is not None
    assert f"{TOTAL} / {TOTAL}" in row.group(1) and "Confidence collapse" in row.group(1)
    findings = re.search(r'data-field="findings">(\d+)<', row.group(1))
    assert findings is not None and int(findings.group(1)) >= 1
    live_list = client.get("/ui/live/investigations").json()["investigations"]
    assert live_list[0]["brief"]["root_cause"] == "Confidence collapse"
    assert live_list[0]["brief"]["incident"] is True
    entry = served.store.audit_entries(actor="olivia", limit=1)[0]
    assert entry["action"] == "investigation.start" and entry["details"]["investigation"] == number


@pytest.mark.parametrize(
    ("url", "sample", "name", "expected"),
    [
        ("ftp://models.example/predict", b"x\n1\n", "s.csv", "not an http(s) URL"),
        ("http://127.0.0.1:9/predict", None, "", "not the endpoint of a registered model"),
        ("http://127.0.0.1:9/predict", b"x\n1\n", "s.xlsx", "'s.xlsx': unknown format .xlsx"),
        ("http://127.0.0.1:9/predict", b"", "empty.csv", "'empty.csv' is empty"),
    ],
)
def test_a_form_that_cannot_be_investigated_is_shown_again_with_the_reason(
    served: Served, url: str, sample: bytes | None, name: str, expected: str
) -> None:
    client = signed_in(served, "operator")
    csrf = csrf_of(client.get("/ui/investigations"))
    answer = start(client, csrf, url, sample=sample, name=name, map_confidence="score")
    assert answer.status_code == 422, answer.text
    text = html.unescape(answer.text)
    assert expected in text
    assert 'id="form-error"' in text
    assert f'value="{url}"' in text and 'value="score"' in text  # kept
    assert "No investigation yet" in text


def test_the_form_needs_the_csrf_token_and_an_operator(served: Served) -> None:
    operator = signed_in(served, "operator")
    refused = start(operator, "wrong", "http://127.0.0.1:9/p", sample=b"x\n1\n")
    assert refused.status_code == 403 and "CSRF" in refused.text
    viewer = signed_in(served, "viewer")
    page = viewer.get("/ui/investigations")
    assert page.status_code == 200 and 'id="investigate-form"' not in page.text
    assert "needs the operator role" in page.text
    forbidden = start(viewer, csrf_of(page), "http://127.0.0.1:9/p", sample=b"x\n1\n")
    assert forbidden.status_code == 403 and "operator role" in forbidden.text
    assert served.store.audit_entries(action="investigation.start") == []
    anonymous = httpx.get(served.url + "/ui/investigations", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/ui/login")
    assert httpx.get(served.url + "/ui/live/investigations").status_code == 401


def test_a_failed_investigation_shows_why_and_has_no_report(
    served: Served, model: ModelServer
) -> None:
    model.degrade_after(0, "garbage")
    client = signed_in(served, "viewer")
    operator = signed_in(served, "operator")
    csrf = csrf_of(operator.get("/ui/investigations"))
    started = start(operator, csrf, model.url, sample=sample_csv(sample_rows(50)))
    number = int(started.headers["location"].split("/")[-1].split("?")[0])
    until(lambda: client.get(f"/ui/live/investigations/{number}").json()["finished"])
    page = client.get(f"/ui/investigations/{number}")
    assert 'id="inv-error"' in page.text and "invalid JSON" in page.text
    assert "report.md" not in page.text and "failed before a diagnosis" in page.text
    report = client.get(f"/ui/investigations/{number}/report.md")
    assert report.status_code == 409 and "has no report" in report.json()["error"]
    listed = client.get("/ui/investigations").text
    assert re.search(rf'<tr data-id="{number}" data-state="failed">', listed)
    missing = client.get("/ui/investigations/999")
    assert missing.status_code == 404 and "no investigation 999" in missing.text
    assert client.get("/ui/live/investigations/999").status_code == 404
    assert client.get(f"/ui/investigations/{number}/report.pdf").status_code == 422


def test_an_operator_stops_a_running_investigation_from_its_page(
    served: Served, model: ModelServer
) -> None:
    operator = signed_in(served, "operator")
    viewer = signed_in(served, "viewer")
    csrf = csrf_of(operator.get("/ui/investigations"))
    started = start(operator, csrf, model.url, sample=sample_csv(sample_rows(50)), rate_per_s="20")
    number = int(started.headers["location"].split("/")[-1].split("?")[0])
    page = f"/ui/investigations/{number}"
    assert 'id="stop-investigation"' in operator.get(page).text
    assert 'id="stop-investigation"' not in viewer.get(page).text
    refused = viewer.post(f"{page}/stop", data={"csrf": csrf_of(viewer.get(page))})
    assert refused.status_code == 403
    stopped = operator.post(f"{page}/stop", data={"csrf": csrf}, follow_redirects=True)
    assert stopped.status_code == 200 and "is stopping" in stopped.text
    until(lambda: viewer.get(f"/ui/live/investigations/{number}").json()["finished"])
    ended = viewer.get(page).text
    assert "stopped by olivia" in ended and 'id="stop-investigation"' not in ended
    again = operator.post(f"{page}/stop", data={"csrf": csrf})
    assert again.status_code == 409 and "already ended" in again.text
    (entry,) = served.store.audit_entries(action="investigation.stop")
    assert entry["actor"] == "olivia"
