"""The dashboard over the demo's own store, in headless Chromium through a real server.

The scenario simulator runs the demo scenario (the electricity model under a null burst on
``nswprice``, then concept drift) with the real agent, which deploys, opens, acts on and
closes incidents and asks for a retrain's approval. The server then serves that store (no
auth: the browser is the local admin). Each test passes alone and in any order: the one live
update test adds a model, an incident and a window, and the others count what the store holds
when they run.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from mlwarden.agent import reports
from mlwarden.clock import utcnow
from mlwarden.domain import FeatureSpec, ModelSpec, Task
from mlwarden.scenarios.simulate import Simulation
from mlwarden.scenarios.spec import load_scenario
from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.settings import Settings
from mlwarden.store import Store
from mlwarden.store.incidents import CLOSED_STATES, OPEN_STATES, AgentRepo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MODEL = "demo"


class DemoServer:
    def __init__(self, url: str, store: Store) -> None:
        self.url = url
        self.store = store

    def incidents(self, states: tuple[str, ...]) -> list[dict[str, Any]]:
        found = AgentRepo(self.store).list_incidents(model=MODEL, limit=50)
        return [i for i in found if i["state"] in states]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    folder = tmp_path_factory.mktemp("demo")
    # in a thread of its own: the simulator runs an event loop, and Playwright's sync API may
    # hold one in this thread already
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(Simulation(load_scenario("demo"), folder / "sim").run).result()
    settings = Settings(
        data_dir=folder / "data",
        database_url=f"sqlite:///{result.out / 'simulation.db'}",
        auth=False,
        ui_refresh_s=1.0,  # the pages' live updates, waited for below: every second
    )
    store = Store(settings.resolved_database_url)
    server = BackgroundServer(create_app(settings, store)).start()
    try:
        yield DemoServer(server.url, store)
    finally:
        server.stop()
        store.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: errors.append(str(e)))
    yield opened
    context.close()
    assert errors == [], errors


def chart(page: Page, figure: str) -> dict[str, Any]:
    """What Plotly drew in ``figure``: the x axis type, the traces and the shapes."""
    page.wait_for_function(
        f"document.getElementById('{figure}') && document.getElementById('{figure}')._fullLayout"
    )
    drawn: dict[str, Any] = page.evaluate(
        """(id) => {
          const fig = document.getElementById(id);
          return {
            xaxis: fig._fullLayout.xaxis.type,
            traces: fig.data.map((t) => ({name: t.name, meta: t.meta || null, fill: t.fill || null,
                                          type: t.type, x: t.x, hovertext: t.hovertext || null})),
            shapes: (fig.layout.shapes || []).map((s) => ({xref: s.xref, yref: s.yref,
                                                        y0: s.y0, y1: s.y1})),
          };
        }""",
        figure,
    )
    return drawn


def test_performance_chart_runs_on_time_with_its_band_reference_and_markers(
    page: Page, demo: DemoServer
) -> None:
    page.goto(f"{demo.url}/ui/models/{MODEL}")
    drawn = chart(page, "chart-performance")
    assert drawn["xaxis"] == "date"
    expect(page.locator("#metric-choice")).to_have_value("accuracy")
    lines = [t for t in drawn["traces"] if t["meta"] is None and t["fill"] is None]
    assert {t["name"] for t in lines} >= {"measured on labels", "estimated (no labels needed)"}
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", lines[0]["x"][0])  # a time, not a window
    bands = [t for t in drawn["traces"] if t["meta"] == "band"]
    assert [b["fill"] for b in bands] == ["tonexty", "tonexty"]  # measured and estimated
    # the reference: a horizontal line across the chart at v1's accuracy on its holdout
    v1 = demo.store.get_version(MODEL, 1).training_metrics["accuracy"]
    assert {"xref": "paper", "yref": "y", "y0": v1, "y1": v1} in drawn["shapes"]
    expect(page.locator("#chart-performance")).to_contain_text(f"reference {v1:.3g}")
    markers = {t["meta"]: t for t in drawn["traces"] if t["meta"] in ("deploy", "incident")}
    deployments = demo.store.deployment_history(MODEL)
    assert len(markers["deploy"]["x"]) == len(deployments)
    assert any("initial deployment" in text for text in markers["deploy"]["hovertext"])
    incidents = AgentRepo(demo.store).list_incidents(model=MODEL, limit=50)
    assert len(markers["incident"]["x"]) == len(incidents)
    assert all(text.startswith("incident #") for text in markers["incident"]["hovertext"])
    vertical = [s for s in drawn["shapes"] if s["xref"] == "x" and s["yref"] == "paper"]
    assert len(vertical) >= len(deployments) + len(incidents)

    # another metric is another chart, with its own band
    page.select_option("#metric-choice", "roc_auc")
    expect(page.locator("#chart-performance .gtitle")).to_contain_text("roc_auc over time")
    assert [t for t in chart(page, "chart-performance")["traces"] if t["meta"] == "band"]

    # the latency chart shares the time axis and the markers
    latency = chart(page, "chart-latency")
    assert latency["xaxis"] == "date"
    assert {"deploy", "incident"} <= {t["meta"] for t in latency["traces"]}


def test_the_null_burst_shows_on_the_quality_heatmap_beside_drift(
    page: Page, demo: DemoServer
) -> None:
    page.goto(f"{demo.url}/ui/models/{MODEL}")
    page.wait_for_function("document.getElementById('chart-drift')._fullLayout")
    heatmaps = page.evaluate(
        """() => Object.fromEntries(document.getElementById('chart-drift').data.map(
             (t) => [t.name, {y: t.y, z: t.z, type: t.type}]))"""
    )
    assert heatmaps["drift"]["type"] == heatmaps["data quality"]["type"] == "heatmap"
    quality = heatmaps["data quality"]
    nswprice = quality["z"][quality["y"].index("nswprice")]
    # the scenario nulls 60 % of nswprice for a while: those windows stand out
    assert max(v for v in nswprice if v is not None) > 0.5
    others = [
        row
        for feature, row in zip(quality["y"], quality["z"], strict=True)
        if feature != "nswprice"
    ]
    assert max(v for row in others for v in row if v is not None) < 0.05


def test_assets_arrive_gzip_compressed_and_cached_for_good(page: Page, demo: DemoServer) -> None:
    seen: dict[str, Any] = {}
    page.on(
        "response",
        lambda r: seen.setdefault(r.url.rsplit("/", 1)[1], r) if "/ui/assets/" in r.url else None,
    )
    page.goto(f"{demo.url}/ui/models/{MODEL}")
    page.wait_for_function("window.Plotly !== undefined")
    assert set(seen) == {"app.css", "app.js", "plotly.min.js"}
    for name, response in seen.items():
        headers = response.all_headers()
        assert headers["content-encoding"] == "gzip", name
        assert headers["cache-control"] == "public, max-age=31536000, immutable", name
    plotly_url = seen["plotly.min.js"].url
    # what went over the wire, asked for as the browser does
    with httpx.stream("GET", plotly_url, headers={"Accept-Encoding": "gzip"}) as raw:
        wire = sum(len(chunk) for chunk in raw.iter_raw())
    assert wire < 2_000_000  # Plotly.js itself is 4.8 MB


def test_an_incident_is_diagnosed_once_however_often_it_is_viewed(
    page: Page, demo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = reports.diagnose_stored_incident

    def counted(*args: Any) -> Any:
        calls.append(args[1]["id"])
        return real(*args)

    monkeypatch.setattr(reports, "diagnose_stored_incident", counted)
    closed = demo.incidents(CLOSED_STATES)[0]["id"]
    still_open = demo.incidents(OPEN_STATES)[0]["id"]
    for _ in range(2):
        page.goto(f"{demo.url}/ui/incidents/{still_open}")
        expect(page.locator("#diag-h")).to_be_visible()
    # no new window arrives on this store: the open incident's diagnosis is made at most once
    # (0 when an earlier test of this server viewed it already)
    assert calls.count(still_open) <= 1
    page.goto(f"{demo.url}/ui/incidents/{closed}")
    expect(page.locator("#diag-h")).to_be_visible()
    after_first = calls.count(closed)
    assert after_first <= 1  # 0 when an earlier test of this server viewed it already
    page.reload()
    expect(page.locator("#diag-h")).to_be_visible()
    response = page.request.get(f"{demo.url}/ui/incidents/{closed}/report.md")
    assert response.ok and f"incident-{closed}.md" in response.headers["content-disposition"]
    assert calls.count(closed) == after_first


def test_the_approvals_badge_agrees_with_the_approvals_page(page: Page, demo: DemoServer) -> None:
    page.goto(f"{demo.url}/ui/")
    badge = page.locator("#nav-approvals")
    counted = badge.inner_text()
    page.goto(f"{demo.url}/ui/approvals")
    expect(page.locator("#nav-approvals")).to_have_text(counted)
    waiting = page.locator("article.approval")
    expect(page.locator("h2", has_text="Waiting")).to_have_text(f"Waiting ({waiting.count()})")
    assert waiting.count() == int(counted)


def test_overview_tiles_chips_and_sparklines_follow_the_store_without_reload(
    page: Page, demo: DemoServer
) -> None:
    page.goto(f"{demo.url}/ui/")
    unknown = page.locator('.summary [data-count="unknown"]')
    before = int(unknown.inner_text())
    row = page.locator(f'tr[data-model="{MODEL}"]')
    spark = row.locator('[data-field="spark_performance"] svg')
    trend = spark.get_attribute("aria-label")
    page.evaluate("window.__not_reloaded = true")

    name = f"newcomer-{uuid.uuid4().hex[:8]}"
    demo.store.create_model(
        ModelSpec(name=name, task=Task.CLASSIFICATION, features=[FeatureSpec(name="x")])
    )
    repo = AgentRepo(demo.store)
    last = repo.last_window(MODEL)
    assert last is not None
    incident = repo.create_incident(MODEL, last, {}, "a new failure")
    repo.update_incident(incident, severity="critical")
    repo.save_window(MODEL, last + 1, utcnow(), {"accuracy": 0.01}, [])

    expect(unknown).to_have_text(str(before + 1), timeout=15_000)  # the newcomer has no data
    chip = row.locator('[data-field="incident_chip"]')
    expect(chip.locator("a")).to_have_text(f"#{incident}")
    expect(chip.locator(".sev")).to_have_text("critical")
    expect(spark).not_to_have_attribute("aria-label", trend or "")
    assert "0.01" in (spark.get_attribute("aria-label") or "")
    assert page.evaluate("window.__not_reloaded") is True


def test_an_open_incident_page_follows_its_windows_severity_and_timeline_without_reload(
    page: Page, demo: DemoServer
) -> None:
    incident = demo.incidents(OPEN_STATES)[0]
    page.goto(f"{demo.url}/ui/incidents/{incident['id']}")
    head = page.locator("#incident-head")
    expect(head.locator('[data-field="windows"]')).to_have_text(
        f"{incident['first_window']}\u2013{incident['last_window']}"
    )
    entries = page.locator("#timeline li")
    before = entries.count()
    page.evaluate("window.__not_reloaded = true")

    severity = "low" if incident["severity"] != "low" else "high"
    AgentRepo(demo.store).update_incident(
        incident["id"],
        last_window=incident["last_window"] + 1,
        severity=severity,
        event="rediagnosed",
        text="the next window is worse",
    )
    expect(head.locator('[data-field="windows"]')).to_have_text(
        f"{incident['first_window']}\u2013{incident['last_window'] + 1}", timeout=15_000
    )
    expect(head.locator('[data-field="severity"] .sev')).to_have_text(severity)
    stored = AgentRepo(demo.store).get_incident(incident["id"])["timeline"]
    assert len(stored) > before
    expect(entries).to_have_count(len(stored))  # the new entries appended, none repeated
    expect(entries.filter(has_text="rediagnosed the next window is worse")).to_have_count(1)
    assert page.evaluate("window.__not_reloaded") is True
