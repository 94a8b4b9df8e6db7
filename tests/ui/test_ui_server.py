"""The dashboard on the server side: sessions, CSRF, roles, caching, and the queries behind the
pages, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlwarden.domain import (
    DeploymentState,
    FeatureSpec,
    Finding,
    FindingKind,
    ModelSpec,
    Role,
    Task,
)
from mlwarden.server import create_app
from mlwarden.settings import Settings
from mlwarden.store import Store, dashboard
from mlwarden.store.incidents import AgentRepo
from mlwarden.ui import queries, web
from mlwarden.ui.report_cache import server_diagnoses
from mlwarden.ui.session import SESSION_COOKIE, Session, Signer

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def make_model(store: Store, name: str = "m", disabled: bool = False) -> None:
    store.create_model(
        ModelSpec(
            name=name,
            task=Task.CLASSIFICATION,
            features=[FeatureSpec(name="x"), FeatureSpec(name="c", type="categorical")],
            target="y",
        )
    )
    store.add_version(name, kind="remote", endpoint={"url": "http://127.0.0.1:9/predict"})
    store.set_deployment(
        name, DeploymentState(live_version=1, disabled=disabled), actor="t", reason="first"
    )


def client_for(store: Store, tmp_path: Path, auth: bool = True) -> TestClient:
    app = create_app(Settings(data_dir=tmp_path / "data", auth=auth), store)
    return TestClient(app)


def sign_in(client: TestClient, token: str) -> Any:
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce is not None
    return client.post(
        "/ui/login",
        data={"token": token, "nonce": nonce.group(1), "next": "/ui/approvals"},
        follow_redirects=False,
    )


def csrf_of(client: TestClient) -> str:
    page = client.get("/ui/")
    found = re.search(r'data-csrf="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    make_model(store)
    with client_for(store, tmp_path) as c:
        yield c


def test_signer_refuses_tampered_and_expired_values() -> None:
    signer = Signer(b"s" * 32)
    value = signer.sign({"n": "alice", "r": "viewer", "c": "x"})
    assert signer.unsign(value, 60) is not None
    mac = value.split(".")[1]
    forged = Signer(b"s" * 32).sign({"n": "alice", "r": "admin", "c": "x"}).split(".")[0]
    assert signer.unsign(f"{forged}.{mac}", 60) is None
    assert Signer(b"t" * 32).unsign(value, 60) is None
    assert signer.unsign(value, -1) is None
    assert signer.unsign("garbage", 60) is None


def test_sign_in_sets_a_session_and_a_revoked_token_ends_it(
    client: TestClient, store: Store
) -> None:
    assert client.get("/ui/", follow_redirects=False).headers["location"].startswith("/ui/login")
    token = store.create_token("olga", "operator")
    signed = sign_in(client, token)
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/approvals"
    cookie = signed.cookies.get(SESSION_COOKIE) or client.cookies.get(SESSION_COOKIE)
    assert cookie and token not in cookie  # the API token never goes into the cookie
    assert client.get("/ui/").status_code == 200
    assert client.get("/ui/live/counts").json() == {"pending_approvals": 0}
    store.revoke_token("olga")
    assert client.get("/ui/", follow_redirects=False).status_code == 303
    assert client.get("/ui/live/overview").status_code == 401


def test_the_sign_in_form_itself_needs_its_nonce(client: TestClient, store: Store) -> None:
    token = store.create_token("olga", "operator")
    refused = client.post("/ui/login", data={"token": token, "nonce": "guess"})
    assert refused.status_code == 403 and "expired" in refused.text
    assert SESSION_COOKIE not in refused.cookies
    bad = sign_in(client, "wrong")
    assert bad.status_code == 401 and "unknown or revoked" in bad.text


def test_a_forged_session_cookie_is_not_accepted(client: TestClient, store: Store) -> None:
    store.create_token("vera", "viewer")
    other = Signer(b"z" * 32).sign(Session.new("vera", Role.ADMIN).payload())
    client.cookies.set(SESSION_COOKIE, other, path="/ui")
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_operator_posts_need_csrf_and_the_operator_role(client: TestClient, store: Store) -> None:
    sign_in(client, store.create_token("vera", "viewer"))
    csrf = csrf_of(client)
    refused = client.post("/ui/models/m/monitoring", data={"on": "0", "csrf": csrf})
    assert refused.status_code == 403 and "operator" in refused.json()["error"]
    assert store.is_monitored("m")
    page = client.get("/ui/models/m")
    assert "Stop monitoring" not in page.text and "Restore revision" not in page.text
    client.cookies.clear()
    sign_in(client, store.create_token("olga", "operator"))
    assert client.post("/ui/models/m/monitoring", data={"on": "0"}).status_code == 403
    assert store.is_monitored("m")
    csrf = csrf_of(client)
    done = client.post("/ui/models/m/monitoring", data={"on": "0", "csrf": csrf})
    assert done.status_code == 200 and "Monitoring stopped." in done.text
    assert not store.is_monitored("m")
    assert store.audit_entries(actor="olga", action="model.monitoring")


def test_without_auth_the_browser_is_the_local_admin_and_csrf_still_applies(
    store: Store, tmp_path: Path
) -> None:
    make_model(store)
    with client_for(store, tmp_path, auth=False) as c:
        page = c.get("/ui/")
        assert page.status_code == 200 and "local · admin" in page.text
        assert c.post("/ui/models/m/undo", data={"revision": "1"}).status_code == 403
        csrf = csrf_of(c)
        store.set_deployment("m", DeploymentState(live_version=1, disabled=True), actor="t")
        undone = c.post("/ui/models/m/undo", data={"revision": "1", "csrf": csrf})
        assert undone.status_code == 200 and "restored as revision 3" in undone.text
        assert store.get_deployment("m").disabled is False  # type: ignore[union-attr]


def test_plotly_comes_from_the_installed_package_with_caching(client: TestClient) -> None:
    first = client.get("/ui/vendor/plotly.min.js")
    assert first.status_code == 200 and len(first.content) > 1_000_000
    assert "max-age" in first.headers["cache-control"]
    again = client.get("/ui/vendor/plotly.min.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


def test_pages_link_assets_compressed_under_versioned_urls_cached_for_a_year(
    client: TestClient, store: Store
) -> None:
    sign_in(client, store.create_token("vera", "viewer"))
    page = client.get("/ui/models/m").text
    links = re.findall(r'(?:src|href)="(/ui/assets/[0-9a-f]{16}/[^"]+)"', page)
    assert sorted(link.rsplit("/", 1)[1] for link in links) == [
        "app.css",
        "app.js",
        "plotly.min.js",
    ]
    plotly_url = next(link for link in links if link.endswith("plotly.min.js"))
    raw = client.get(plotly_url, headers={"Accept-Encoding": "identity"})
    zipped = client.get(plotly_url, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert (
        raw.headers.get("content-encoding") is None and zipped.headers["content-encoding"] == "gzip"
    )
    assert zipped.content == raw.content  # the client decompressed what it was sent
    assert zipped.num_bytes_downloaded < raw.num_bytes_downloaded / 3
    for response in (raw, zipped):
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["vary"] == "Accept-Encoding"
    not_modified = client.get(plotly_url, headers={"If-None-Match": raw.headers["etag"]})
    assert not_modified.status_code == 304
    # a page rendered before an upgrade asks for an old version: today's file, not kept
    outdated = client.get("/ui/assets/0000000000000000/app.js")
    assert outdated.status_code == 200 and outdated.headers["cache-control"] == "no-cache"
    assert client.get(f"/ui/assets/{'0' * 16}/secret.key").status_code == 404


def test_pages_reference_nothing_outside_the_server(client: TestClient, store: Store) -> None:
    sign_in(client, store.create_token("olga", "operator"))
    for path in (
        "/ui/",
        "/ui/models/m",
        "/ui/approvals",
        "/ui/audit",
        "/ui/diagnose",
        "/ui/incidents",
        "/ui/assistant",
        "/ui/models/m/features/x",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        assert not re.search(r'(src|href)="(https?:)?//', page.text), path


def test_unknown_things_give_a_clear_page(client: TestClient, store: Store) -> None:
    sign_in(client, store.create_token("olga", "operator"))
    missing = client.get("/ui/models/nope")
    assert missing.status_code == 404 and "nope" in missing.text
    assert client.get("/ui/incidents/999").status_code == 404
    assert client.get("/ui/models/m/features/zzz").status_code == 404
    assert client.get("/ui/models/m/signals.xml").status_code == 422
    bad_time = client.get("/ui/audit?since=yesterday")
    assert bad_time.status_code == 422 and "since" in bad_time.text


def finding(window: int) -> Finding:
    return Finding(
        kind="latency",
        detector="t",
        features=[],
        statistic="p99",
        score=3.0,
        threshold=1.5,
        window=window,
        message="slow",
    )


def test_fleet_reads_the_latest_windows_and_derives_health(store: Store) -> None:
    for name, disabled in (("a", False), ("b", False), ("c", True), ("d", False)):
        make_model(store, name, disabled)
    repo = AgentRepo(store)
    for w in range(1, 51):
        repo.save_window("a", w, T0 + timedelta(hours=w), {"accuracy": w / 100}, [])
        repo.save_window(
            "b",
            w,
            T0 + timedelta(hours=w),
            {"latency_p99_ms": 10.0},
            [finding(w)] if w == 50 else [],
        )
    repo.save_window("c", 1, T0, {"accuracy": 0.9}, [])
    rows = {r.name: r for r in queries.fleet(store)}
    a = rows["a"]
    assert (a.status, a.last_window, a.latest["accuracy"]) == ("healthy", 50, 0.5)
    assert a.series["accuracy"] == [w / 100 for w in range(21, 51)]  # only the last 30
    assert a.last_ts == T0 + timedelta(hours=50)
    assert rows["b"].status == "degraded" and "finding" in rows["b"].reason
    assert rows["c"].status == "disabled"
    assert rows["d"].status == "unknown" and rows["d"].last_window is None
    incident = repo.create_incident("a", 50, {}, "slow")
    repo.update_incident(incident, severity="critical")
    assert {r.name: r for r in queries.fleet(store)}["a"].status == "failing"
    repo.update_incident(incident, state="resolved")
    assert {r.name: r for r in queries.fleet(store)}["a"].status == "healthy"


def test_fleet_reads_every_model_of_a_fleet_larger_than_one_statement(store: Store) -> None:
    """The spark windows are read `MODELS_PER_READ` models a statement: each model keeps its
    own range."""
    from sqlalchemy import insert

    from mlwarden.store import agent_tables as at

    models = queries.MODELS_PER_READ + 5
    for m in range(models):
        store.create_model(
            ModelSpec(name=f"m{m:03d}", task=Task.REGRESSION, features=[FeatureSpec(name="x")])
        )
    ids = [store.model_id(f"m{m:03d}") for m in range(models)]
    with store.engine.begin() as conn:
        conn.execute(
            insert(at.signals),
            [
                {
                    "model_id": model_id,
                    "window": w,
                    "ts": T0 + timedelta(hours=w),
                    "name": "rmse",
                    "value": model_id + w / 100,
                }
                for m, model_id in enumerate(ids)
                if m % 7
                for w in range(m % 40, m % 40 + 35)
            ],
        )
    rows = {r.name: r for r in queries.fleet(store)}
    assert len(rows) == models
    for m, model_id in enumerate(ids):
        row = rows[f"m{m:03d}"]
        if m % 7 == 0:
            assert row.last_window is None and row.series == {}
            continue
        last = m % 40 + 34
        assert row.last_window == last and row.last_ts == T0 + timedelta(hours=last)
        assert row.series["rmse"] == [model_id + w / 100 for w in range(last - 29, last + 1)]
        assert row.latest == {"rmse": model_id + last / 100}
    # what was read is kept until a model's window closes: a new window of one model (and
    # the first of another, with a finding) shows at the next view, the others' rows as before
    repo = AgentRepo(store)
    finding = Finding(
        kind=FindingKind.LATENCY,
        detector="t",
        statistic="p99",
        score=2.0,
        threshold=1.5,
        message="slow",
    )
    repo.save_window("m001", 36, T0 + timedelta(hours=36), {"rmse": 9.0}, [])
    repo.save_window("m007", 0, T0, {"rmse": 1.0}, [finding])
    again = {r.name: r for r in queries.fleet(store)}
    assert again["m001"].last_window == 36 and again["m001"].series["rmse"][-1] == 9.0
    assert again["m007"].last_window == 0 and again["m007"].findings_last_window == 1
    assert again["m002"].series is rows["m002"].series  # kept: its last window is the same
    assert web.sparkline(again["m002"].series["rmse"]) == web.sparkline(
        list(again["m002"].series["rmse"])
    )
    # the same rows as a view with nothing kept
    dashboard._WINDOWS_READ.clear()
    fresh = {r.name: r for r in queries.fleet(store)}
    assert {
        n: (r.last_window, r.series, r.latest, r.findings_last_window) for n, r in again.items()
    } == {n: (r.last_window, r.series, r.latest, r.findings_last_window) for n, r in fresh.items()}


def test_model_signals_arrange_charts_and_the_drift_heatmap(store: Store) -> None:
    make_model(store)
    repo = AgentRepo(store)
    for w in (1, 2, 3):
        repo.save_window(
            "m",
            w,
            T0 + timedelta(hours=w),
            {
                "accuracy": 0.8,
                "latency_p99_ms": 5.0,
                "drift.psi.x": 0.1 * w,
                "drift.ks.x": 0.5,
                "drift.psi.c": None,
                "something_new": 1.0,
            },
            [],
        )
    data = queries.model_signals(store, store.model_id("m"))
    assert data.windows == [1, 2, 3]
    assert data.groups["performance"] == ["accuracy"] and data.groups["other"] == ["something_new"]
    assert "window.closed" not in data.series
    assert data.heatmap["stat"] == "psi" and data.heatmap["features"] == ["c", "x"]
    assert data.heatmap["z"][1] == pytest.approx([0.1, 0.2, 0.3])
    assert data.heatmap["z"][0] == [None, None, None]


def test_feature_distribution_compares_shares_on_shared_bins() -> None:
    reference = [{"x": float(v), "c": "a"} for v in range(100)]
    recent = [{"x": float(v) + 50, "c": "b" if v % 2 else "a"} for v in range(50)] + [{"x": None}]
    numeric = queries.feature_distribution(reference, recent, "x", bins=10)
    assert numeric["kind"] == "numeric" and len(numeric["x"]) == 10
    assert sum(numeric["reference"]) == pytest.approx(1) and sum(
        numeric["recent"]
    ) == pytest.approx(1)
    assert numeric["recent"][:3] == [0, 0, 0] and numeric["recent_nulls"] == 1
    categorical = queries.feature_distribution(reference, recent, "c")
    assert categorical["kind"] == "categorical"
    shares = dict(zip(categorical["x"], categorical["recent"], strict=True))
    assert shares == {"a": 0.5, "b": 0.5}


def test_feature_distribution_of_a_text_feature_is_its_lengths_rates_and_words() -> None:
    """A declared text feature is summarised as the monitor summarises it, not per value."""
    names = ["Smith", "Jones", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas"]
    # rows in pairs: what the even rows teach the vocabulary, the odd rows repeat
    reference = [{"t": f"{names[i // 2 % 8]}, Mr. John {i // 2}"} for i in range(80)]
    recent = [{"t": f"ticket A/{1000 + i}"} for i in range(30)] + [{"t": ""}] * 10
    text = queries.feature_distribution(reference, recent, "t", text=True)
    assert text["kind"] == "text" and len(text["x"]) == len(text["recent"])
    assert text["x"][0].startswith("<") and text["recent"][0] > text["reference"][0] == 0
    assert text["rates"]["recent"]["empty_rate"] == 0.25
    assert text["rates"]["reference"]["oov_rate"] == 0
    assert text["rates"]["recent"]["oov_rate"] == 1
    assert text["words"]["x"][:2] == ["john", "mr"] and text["words"]["recent"][:2] == [0, 0]
    assert queries.feature_distribution(reference, recent, "t")["kind"] == "categorical"


def test_audit_filters_by_model_actor_kind_and_time(store: Store) -> None:
    make_model(store, "fraud")
    make_model(store, "fraud-eu")
    store.audit("olga", "approval.approve", "fraud/approval/1", {})
    store.audit("olga", "approval.reject", "fraud-eu/approval/2", {})
    store.audit("agent", "action.done", "fraud", {})
    targets = [e["target"] for e in dashboard.audit_page(store, model="fraud")]
    assert targets[:2] == ["fraud", "fraud/approval/1"]
    assert all(t == "fraud" or t.startswith("fraud/") for t in targets)  # not fraud-eu
    assert [e["action"] for e in dashboard.audit_page(store, kind="approval")] == [
        "approval.reject",
        "approval.approve",
    ]
    assert len(dashboard.audit_page(store, actor="agent")) == 1
    later = datetime.now(UTC) + timedelta(hours=1)
    assert dashboard.audit_page(store, since=later) == []


def test_the_server_address_itself_leads_to_the_dashboard(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/ui/"
    # without a session the dashboard then asks to sign in, as any page does
    page = client.get("/", follow_redirects=True)
    assert page.status_code == 200 and 'name="token"' in page.text


def test_an_incident_is_diagnosed_once_per_change_or_new_window(
    client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlwarden.agent import reports

    calls: list[int] = []
    real = reports.diagnose_stored_incident

    def counted(*args: Any) -> Any:
        calls.append(args[1]["id"])
        return real(*args)

    monkeypatch.setattr(reports, "diagnose_stored_incident", counted)
    # counted here: made in the server's threads, not in its diagnosis process
    server_diagnoses(client.app.state.mlwarden).process.enabled = False  # type: ignore[attr-defined]
    sign_in(client, store.create_token("ivy", "viewer"))
    repo = AgentRepo(store)
    for w in range(1, 6):
        repo.save_window("m", w, T0 + timedelta(hours=w), {"accuracy": 0.9}, [finding(w)])
    incident = repo.create_incident("m", 3, {}, "drifting")
    page = f"/ui/incidents/{incident}"
    for _ in range(2):  # open, nothing new: the second view is the first's diagnosis
        assert client.get(page).status_code == 200
    assert calls == [incident]
    # a new window (the signals after the incident grew) is diagnosed anew, once
    repo.save_window("m", 6, T0 + timedelta(hours=6), {"accuracy": 0.9}, [])
    for _ in range(2):
        assert client.get(page).status_code == 200
    # (made beside the page, which showed the window before's meanwhile)
    for _ in range(500):
        if client.get(f"/ui/live/incidents/{incident}").json()["diagnosis_current"]:
            break
        time.sleep(0.02)
    assert calls == [incident] * 2
    repo.update_incident(incident, state="resolved", event="resolved", text="recovered")
    first = client.get(page)
    again = client.get(page)
    report = client.get(f"{page}/report.md")
    assert first.status_code == again.status_code == report.status_code == 200
    assert "resolved" in again.text and first.text == again.text
    assert calls == [incident] * 3  # the page twice and the report: one diagnosis
    repo.update_incident(incident, event="note", text="a person looked at it")
    assert client.get(page).status_code == 200
    assert calls == [incident] * 4  # a change to the closed incident is diagnosed anew


def test_the_approvals_badge_counts_what_the_approvals_page_lists(
    client: TestClient, store: Store
) -> None:
    from mlwarden.domain import ActionKind
    from mlwarden.store.approvals import Approvals

    sign_in(client, store.create_token("abe", "viewer"))
    approvals = Approvals(store)
    waiting = approvals.request("m", ActionKind.ROLLBACK, {}, expiry_minutes=60)
    # overdue, and not marked expired yet: the agent's next pass would do that
    approvals.request(
        "m", ActionKind.RETRAIN, {}, expiry_minutes=60, now=datetime.now(UTC) - timedelta(hours=2)
    )

    def badge(html: str) -> str:
        found = re.search(r'id="nav-approvals"[^>]*>(\d+)<', html)
        assert found is not None
        return found.group(1)

    assert badge(client.get("/ui/").text) == "1"
    assert client.get("/ui/live/counts").json() == {"pending_approvals": 1}
    assert client.get("/ui/live/overview").json()["pending_approvals"] == 1
    page = client.get("/ui/approvals").text
    assert badge(page) == "1" and "Waiting (1)" in page
    assert re.findall(r'<article class="card approval" id="approval-(\d+)"', page) == [str(waiting)]


def test_model_page_data_has_metric_bands_quality_rates_markers_and_the_reference(
    client: TestClient, store: Store
) -> None:
    sign_in(client, store.create_token("mo", "viewer"))
    repo = AgentRepo(store)
    for w in range(1, 5):
        burst = 0.6 if w >= 3 else 0.0
        repo.save_window(
            "m",
            w,
            T0 + timedelta(hours=w),
            {
                "accuracy": 0.8,
                "accuracy_ci_low": 0.75,
                "accuracy_ci_high": 0.85,
                "estimated_accuracy": 0.79,
                "null_rate.x": burst,
                "invalid_rate.x": 0.01,
                "null_rate.c": 0.0,
            },
            [],
        )
    incident = repo.create_incident("m", 3, {}, "nulls")
    data = client.get("/ui/live/models/m").json()
    assert data["times"][0] == (T0 + timedelta(hours=1)).isoformat()
    assert data["metrics"] == [
        {
            "metric": "accuracy",
            "measured": "accuracy",
            "band": ["accuracy_ci_low", "accuracy_ci_high"],
            "estimated": "estimated_accuracy",
            "estimated_band": None,
        }
    ]
    assert "accuracy_ci_low" in data["groups"]["interval"]  # a band, not a line of its own
    quality = data["quality"]
    assert quality["features"] == ["c", "x"]
    assert quality["z"][1] == [0.01, 0.01, 0.6, 0.6]  # the worst rate of the feature
    assert quality["text"][1][2] == "invalid rate 1.0%<br>null rate 60.0%"
    kinds = {m["kind"]: m for m in data["markers"]}
    assert kinds["incident"]["url"] == f"/ui/incidents/{incident}"
    assert kinds["incident"]["label"].startswith(f"incident #{incident} opened")
    # make_model deployed v1 before the test's windows, which are dated in the past: the
    # revision is later than the charts' first window, so it is marked
    assert kinds["deploy"]["label"].startswith("revision 1 by t: live v1")
    assert data["reference"] == {"version": 1, "metrics": {}}  # a remote version: none given


def test_pages_and_live_json_are_compressed_for_clients_that_accept_gzip(
    client: TestClient, store: Store
) -> None:
    sign_in(client, store.create_token("gus", "viewer"))
    repo = AgentRepo(store)
    for w in range(1, 60):
        repo.save_window("m", w, T0 + timedelta(hours=w), {"accuracy": 0.8 + w / 1000}, [])
    for k in range(6):  # a fleet whose overview JSON is worth compressing
        make_model(store, f"other-{k}")
    for path in ("/ui/models/m", "/ui/live/models/m", "/ui/live/overview"):
        zipped = client.get(path, headers={"Accept-Encoding": "gzip"})
        plain = client.get(path, headers={"Accept-Encoding": "identity"})
        assert zipped.headers["content-encoding"] == "gzip", path
        assert "content-encoding" not in plain.headers, path
        assert zipped.num_bytes_downloaded < plain.num_bytes_downloaded / 2, path
        assert zipped.headers["vary"] == "Accept-Encoding"
    # a small answer is not worth compressing
    assert "content-encoding" not in client.get("/ui/live/counts").headers


def test_an_operator_acknowledges_assigns_and_annotates_from_the_incident_page(
    client: TestClient, store: Store
) -> None:
    incident = AgentRepo(store).create_incident("m", 3, {}, "drifting")
    page = f"/ui/incidents/{incident}"
    sign_in(client, store.create_token("vera", "viewer"))
    shown = client.get(page).text
    assert "need the operator role" in shown and 'action="/ui/incidents' not in shown
    assert "still acts on this incident per its policy" in shown
    csrf = csrf_of(client)
    refused = client.post(f"{page}/acknowledge", data={"csrf": csrf})
    assert refused.status_code == 403 and "operator" in refused.json()["error"]

    client.cookies.clear()
    sign_in(client, store.create_token("olga", "operator"))
    assert client.post(f"{page}/acknowledge", data={"csrf": "forged"}).status_code == 403
    assert client.post(f"{page}/notes", data={"text": "no token"}).status_code == 403
    csrf = csrf_of(client)
    acked = client.post(f"{page}/acknowledge", data={"csrf": csrf})
    assert acked.status_code == 200 and "Acknowledged by olga" in acked.text
    assert 'id="acknowledge"' not in acked.text  # nothing left to acknowledge
    again = client.post(f"{page}/acknowledge", data={"csrf": csrf})
    assert again.status_code == 409 and "already acknowledged by olga" in again.text
    assigned = client.post(f"{page}/assign", data={"csrf": csrf, "assignee": "ann"})
    assert assigned.status_code == 200 and "ann (assigned by olga" in assigned.text
    noted = client.post(f"{page}/notes", data={"csrf": csrf, "text": "<b>ETL</b> re-ran"})
    assert noted.status_code == 200 and "&lt;b&gt;ETL&lt;/b&gt; re-ran" in noted.text
    assert "<b>ETL</b>" not in noted.text  # a note is text, never markup
    empty = client.post(f"{page}/notes", data={"csrf": csrf, "text": "  "})
    assert empty.status_code == 422 and "cannot be empty" in empty.text
    unknown = client.post("/ui/incidents/999999/notes", data={"csrf": csrf, "text": "x"})
    assert unknown.status_code == 404 and "no incident 999999" in unknown.text

    listed = client.get("/ui/incidents").text
    assert "acknowledged by olga · assigned to ann" in listed
    # the filter: "active" lists what is still worked on, a state name that does not exist
    # is a clear error page, not an empty list
    active = client.get("/ui/incidents?state_filter=active").text
    assert "acknowledged by olga · assigned to ann" in active
    assert "acknowledged by olga" not in client.get("/ui/incidents?state_filter=resolved").text
    typo = client.get("/ui/incidents?state_filter=opne")
    assert typo.status_code == 422 and "unknown incident state" in typo.text

    live = client.get(f"/ui/live/incidents/{incident}").json()
    assert live["oncall"]["acknowledged"]["by"] == "olga"
    assert live["oncall"]["assignee"]["name"] == "ann"
    assert [n["text"] for n in live["oncall"]["notes"]] == ["<b>ETL</b> re-ran"]
    changes = [e for e in store.audit_entries(actor="olga") if e["action"] != "ui.sign_in"]
    assert [(e["action"], e["target"]) for e in changes] == [
        ("incident.annotate", f"incident:{incident}"),
        ("incident.assign", f"incident:{incident}"),
        ("incident.acknowledge", f"incident:{incident}"),
    ]


def test_an_operator_accepts_drift_and_reopens_it_from_the_incident_page(
    client: TestClient, store: Store
) -> None:
    repo = AgentRepo(store)
    incident = repo.create_incident("m", 3, {}, "drift: data_drift", scope="drift")
    quality = repo.create_incident("m", 3, {}, "quality: nulls", scope="quality")
    sign_in(client, store.create_token("olga", "operator"))
    page = f"/ui/incidents/{incident}"
    assert 'id="accept"' in client.get(page).text
    assert 'id="accept"' not in client.get(f"/ui/incidents/{quality}").text
    csrf = csrf_of(client)
    accepted = client.post(f"{page}/accept", data={"csrf": csrf, "text": "seasonal prices"})
    assert accepted.status_code == 200 and "Drift accepted" in accepted.text
    assert 'id="reopen"' in accepted.text and 'id="accept"' not in accepted.text
    refused = client.post(f"/ui/incidents/{quality}/accept", data={"csrf": csrf, "text": "x"})
    assert refused.status_code == 409 and "only drift" in refused.text
    reopened = client.post(f"{page}/reopen", data={"csrf": csrf, "text": "prices broke"})
    assert reopened.status_code == 200 and repo.get_incident(incident)["state"] == "open"
    changes = [e["action"] for e in store.audit_entries(actor="olga")]
    assert changes[:2] == ["incident.reopened", "incident.accepted"]


def test_an_operator_deploys_a_version_through_the_apis_path_and_compares_two(
    client: TestClient, store: Store
) -> None:
    store.add_version("m", kind="remote", endpoint={"url": "http://127.0.0.1:9/v2"})
    sign_in(client, store.create_token("vera", "viewer"))
    page = client.get("/ui/models/m")
    assert "Make v2 live" not in page.text  # viewers get no deploy button
    assert 'href="/ui/models/m/compare?a=1&amp;b=2"' in page.text
    refused = client.post("/ui/models/m/versions/2/deploy", data={"csrf": csrf_of(client)})
    assert refused.status_code == 403
    client.cookies.clear()
    sign_in(client, store.create_token("olga", "operator"))
    page = client.get("/ui/models/m")
    assert "Make v2 live" in page.text and "Make v1 live" not in page.text
    assert client.post("/ui/models/m/versions/2/deploy", data={}).status_code == 403  # no CSRF
    csrf = csrf_of(client)
    missing = client.post("/ui/models/m/versions/9/deploy", data={"csrf": csrf})
    assert missing.status_code == 404 and "version" in missing.text
    assert store.get_deployment("m").revision == 1  # type: ignore[union-attr]
    done = client.post(
        "/ui/models/m/versions/2/deploy", data={"csrf": csrf, "reason": "v2 did better"}
    )
    assert done.status_code == 200 and "v2 is live (revision 2)." in done.text
    deployment = store.get_deployment("m")
    assert deployment is not None and deployment.live_version == 2
    assert deployment.actor == "olga" and deployment.reason == "v2 did better"
    # the same audit entry and timeline event as the API's PATCH makes
    admin = store.create_token("ada", "admin")
    api = client.patch(
        "/v1/models/m/deployment",
        json={"live_version": 1, "reason": "back"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert api.status_code == 200
    ui_entry, api_entry = (store.audit_entries(actor=who, limit=1)[0] for who in ("olga", "ada"))
    assert ui_entry["action"] == api_entry["action"] and ui_entry["target"] == "m"
    events = {e["actor"]: e["kind"] for e in store.events("m", limit=10)}
    assert events["olga"] == events["ada"]  # one kind of event on the model's timeline
    compared = client.get("/ui/models/m/compare")
    assert compared.status_code == 200
    assert "v1 (live)" in compared.text and "No labelled record yet" in compared.text
    unknown = client.get("/ui/models/m/compare?a=1&b=7")
    assert unknown.status_code == 404 and "has no version 7: it has v1, v2" in unknown.text


def test_an_incident_page_says_where_each_alert_went_or_that_none_could(
    client: TestClient, store: Store
) -> None:
    import http.server
    import threading

    from mlwarden.agent.operations.actions import run_action
    from mlwarden.agent.policy import load_policy_text
    from mlwarden.agent.remedies.base import ExecEnv
    from mlwarden.domain import ActionKind
    from mlwarden.store.journal import ActionJournal

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    receiver = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = receiver.server_address[1]
    try:
        repo = AgentRepo(store)
        repo.save_window("m", 1, T0, {"accuracy": 0.9}, [finding(1)])
        incident = repo.create_incident("m", 1, {}, "slow")
        for policy in (
            "defaults: {}",  # no webhook
            f"defaults: {{alert: {{webhook_url: 'http://127.0.0.1:{port}/T0K3N/hook'}}}}",
        ):
            env = ExecEnv(store, ActionJournal(store), load_policy_text(policy).for_model("m"))
            run_action(env, env.journal.create("m", ActionKind.ALERT, {}, incident_id=incident))
    finally:
        receiver.shutdown()
    sign_in(client, store.create_token("ivy", "viewer"))
    page = client.get(f"/ui/incidents/{incident}").text
    alerts = page.split('<ul id="alert-status">')[1].split("</ul>")[0]
    assert "not delivered: no webhook configured" in alerts
    assert f"delivered to http://127.0.0.1:{port} (HTTP 204, 1 attempt(s))" in alerts
    assert "T0K3N" not in page  # the webhook's path (a chat token) is never shown
