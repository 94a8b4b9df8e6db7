"""The dashboard in a real headless Chromium against a real server (auth on) and a real fleet.

The tests of this module share one server (per pytest worker). Each one passes alone and after
any of the others in file order: a test that needs a state the fleet does not start in (a
window past the last one, elec on its fallback) makes it itself, so none relies on another test
having run on the same worker before it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, expect

from conftest import Dashboard, screenshot
from mlwarden.agent.loop import Agent
from mlwarden.agent.monitor_source import NoNewWindows
from mlwarden.clock import utcnow
from mlwarden.domain import DeploymentState
from mlwarden.store.approvals import Approvals
from mlwarden.store.incidents import AgentRepo

# The tests walk one dashboard in file order (an approval approved, then one rejected...):
# `make test` (--dist loadgroup) keeps them on one worker, in this order.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("dashboard_walk")]


class Watched:
    """A signed-in page that remembers console errors and requests to other hosts."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.errors: list[str] = []
        self.foreign: list[str] = []
        host = urlparse(base).netloc
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

        def check(request: Any) -> None:
            url = urlparse(request.url)
            if url.scheme not in ("data", "blob", "about") and url.netloc != host:
                self.foreign.append(request.url)

        page.on("request", check)

    def clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.foreign == [], self.foreign


def signed_in_context(browser: Any, dashboard: Dashboard, role: str) -> Any:
    """A browser context signed in as ``role`` through the sign-in form."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.goto(dashboard.url + "/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.fill("#token", dashboard.tokens[role])
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Fleet overview")
    page.close()
    return context


@pytest.fixture(scope="module")
def contexts(browser: Any, dashboard: Dashboard) -> Iterator[dict[str, Any]]:
    # one context per role for the module: Plotly.js is fetched and compiled once, as for a
    # user who keeps the dashboard open
    made = {role: signed_in_context(browser, dashboard, role) for role in ("operator", "viewer")}
    yield made
    for context in made.values():
        context.close()


def open_page(context: Any, dashboard: Dashboard) -> Iterator[Watched]:
    page = context.new_page()
    watched = Watched(page, dashboard.url)
    page.goto(dashboard.url + "/ui/")
    try:
        yield watched
    finally:
        page.close()


@pytest.fixture
def operator(contexts: dict[str, Any], dashboard: Dashboard) -> Iterator[Watched]:
    yield from open_page(contexts["operator"], dashboard)


@pytest.fixture
def viewer(contexts: dict[str, Any], dashboard: Dashboard) -> Iterator[Watched]:
    yield from open_page(contexts["viewer"], dashboard)


def pending(dashboard: Dashboard) -> dict[str, dict[str, Any]]:
    return {a["model"]: a for a in Approvals(dashboard.store).list(state="pending")}


def test_sign_in_is_required_and_a_bad_token_is_refused(browser: Any, dashboard: Dashboard) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(dashboard.url + "/ui/approvals")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/approvals"))
    screenshot(page, "login")
    page.fill("#token", "not-a-token")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("unknown or revoked")
    page.fill("#token", dashboard.tokens["viewer"])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/ui/approvals$"))
    live = page.request.get(dashboard.url + "/ui/live/overview")
    assert live.ok
    anonymous = browser.new_context().request.get(dashboard.url + "/ui/live/overview")
    assert anonymous.status == 401
    context.close()


def test_every_page_loads_without_errors_or_foreign_requests(
    operator: Watched, dashboard: Dashboard
) -> None:
    page = operator.page
    rows = page.locator("table.fleet tbody tr")
    expect(rows).to_have_count(3)
    elec = page.locator('tr[data-model="elec"]')
    # status is carried by text, not only by colour
    # the latency incident's severity (so Failing or Degraded) follows the latencies this
    # machine measured through the gateway; either way it is not shown healthy
    expect(elec.locator('[data-field="status"]')).to_contain_text(re.compile("Failing|Degraded"))
    expect(elec.locator('[data-field="live_version"]')).to_have_text("v2")
    expect(page.locator('tr[data-model="titanic"] [data-field="status"]')).to_contain_text(
        "No data yet"
    )
    expect(elec.locator("svg.spark")).to_have_count(2)
    screenshot(page, "overview")

    page.goto(dashboard.url + "/ui/models/elec")
    expect(page.locator("#chart-performance .main-svg").first).to_be_visible()
    expect(page.locator("#chart-latency .main-svg").first).to_be_visible()
    expect(page.locator("#chart-drift .main-svg").first).to_be_visible()
    expect(page.locator("#history tbody tr")).to_have_count(2)
    screenshot(page, "model")

    page.goto(dashboard.url + "/ui/models/elec/features/nswprice")
    expect(page.locator("#chart-feature .main-svg").first).to_be_visible()
    screenshot(page, "feature")

    page.goto(dashboard.url + "/ui/incidents")
    # per model: the seasonal drift (accepted) and the latency spike, one incident per cause
    expect(page.locator("table tbody tr")).to_have_count(4)
    screenshot(page, "incidents")
    page.locator("table tbody tr a").first.click()
    expect(page.locator("h1")).to_contain_text("Incident #")
    expect(page.locator("#diag-h")).to_be_visible()
    expect(page.locator(".explanation")).not_to_be_empty()
    screenshot(page, "incident")

    for path, heading, name in (
        ("/ui/approvals", "Approvals", "approvals"),
        ("/ui/audit", "Audit log", "audit"),
        ("/ui/diagnose", "Diagnose", "diagnose"),
        ("/ui/assistant", "Assistant console", "assistant"),
    ):
        page.goto(dashboard.url + path)
        expect(page.locator("h1")).to_have_text(heading)
        screenshot(page, name)
    page.goto(dashboard.url + "/ui/audit")
    expect(page.locator("#chain")).to_contain_text("Hash chain verified")
    operator.clean()


def test_a_viewer_sees_no_approve_buttons_and_the_server_refuses_anyway(
    viewer: Watched, dashboard: Dashboard
) -> None:
    page = viewer.page
    page.goto(dashboard.url + "/ui/approvals")
    expect(page.locator("article.approval")).to_have_count(2)
    expect(page.locator("button.approve")).to_have_count(0)
    expect(page.locator("button.reject")).to_have_count(0)
    expect(page.locator(".note")).to_contain_text("viewer")
    screenshot(page, "approvals-viewer")
    csrf = page.locator("body").get_attribute("data-csrf")
    approval = pending(dashboard)["elec"]
    refused = page.request.post(
        f"{dashboard.url}/ui/approvals/{approval['id']}/approve",
        form={"csrf": csrf or "", "reason": "viewer tries"},
    )
    assert refused.status == 403
    assert "operator" in refused.json()["error"]
    assert pending(dashboard)["elec"]["state"] == "pending"
    viewer.clean()


def test_a_post_without_the_csrf_token_is_refused(operator: Watched, dashboard: Dashboard) -> None:
    approval = pending(dashboard)["elec"]
    for form in ({"reason": "no token"}, {"reason": "forged", "csrf": "forged"}):
        refused = operator.page.request.post(
            f"{dashboard.url}/ui/approvals/{approval['id']}/approve", form=form
        )
        assert refused.status == 403
        assert "CSRF" in refused.json()["error"]
    assert pending(dashboard)["elec"]["state"] == "pending"
    assert dashboard.store.get_deployment("elec").live_version == 2  # type: ignore[union-attr]


def test_live_update_changes_a_number_without_reload(
    operator: Watched, dashboard: Dashboard
) -> None:
    page = operator.page
    repo = AgentRepo(dashboard.store)
    last = repo.last_window("elec-eu")
    assert last is not None and last >= 8  # the fleet's 8 windows, and any a test added
    cell = page.locator('tr[data-model="elec-eu"] [data-field="last_window"]')
    expect(cell).to_have_text(str(last))
    # the page asks as often as the server's setting says (ui_refresh_s=1 here, 5 s by default)
    live = (page.locator("#fleet").get_attribute("data-live-url") or "?").split("?")[0]
    asked: list[str] = []

    def count(request: Any) -> None:
        if live in request.url:
            asked.append(request.url)

    page.on("request", count)
    page.wait_for_timeout(3_500)
    page.remove_listener("request", count)  # the walk's page lives on through later tests
    assert len(asked) >= 3, asked
    page.evaluate("window.__not_reloaded = true")
    repo.save_window(
        "elec-eu",
        last + 1,
        utcnow() + timedelta(minutes=1),
        {"accuracy": 0.5, "latency_p99_ms": 70.0},
        [],
    )
    expect(cell).to_have_text(str(last + 1), timeout=15_000)
    expect(page.locator('tr[data-model="elec-eu"] [data-field="performance"]')).to_have_text("0.5")
    assert page.evaluate("window.__not_reloaded") is True
    operator.clean()


def test_approving_journals_the_action_and_the_agent_runs_it_once(
    operator: Watched, dashboard: Dashboard
) -> None:
    page = operator.page
    approval = pending(dashboard)["elec"]
    before = dashboard.store.get_deployment("elec")
    page.goto(dashboard.url + "/ui/approvals")
    card = page.locator(f"#approval-{approval['id']}")
    # the agent's reasons in sentences and its numbers in a table, not its machine rationale
    expect(card.locator(".decision-summary")).to_have_text(
        "The agent wants to switch to the fallback version, and waits for an operator's approval."
    )
    expect(card.locator("table.numbers")).to_contain_text("windows with latency findings")
    expect(card).not_to_contain_text("rule:")
    card.locator("input[name=reason]").fill("latency is hurting checkout")
    card.locator("button.approve").click()
    expect(page.locator(".flash")).to_contain_text("Approved: fallback on elec")
    expect(page.locator(".flash")).to_contain_text("the agent runs it on its next pass")
    # the request only recorded the approval: nothing ran inside it
    agent = Agent(dashboard.store, source=NoNewWindows())
    journaled = [a for a in agent.journal.list(model="elec") if a["kind"] == "fallback"]
    assert [a["state"] for a in journaled] == ["pending"]
    assert dashboard.store.get_deployment("elec") == before
    page.goto(dashboard.url + f"/ui/incidents/{approval['incident_id']}")
    row = page.locator(f'tr[data-action="{journaled[0]["id"]}"]')
    expect(row.locator('[data-field="action-progress"]')).to_have_text(
        f"approved (approval {approval['id']}); the agent runs it on its next pass"
    )
    agent.run_once()  # the agent's next pass (the server runs it when agent_in_server is on)
    agent.run_once()  # a second pass runs nothing twice
    assert [a["state"] for a in agent.journal.list(model="elec") if a["kind"] == "fallback"] == [
        "done"
    ]
    deployment = dashboard.store.get_deployment("elec")
    assert deployment is not None and deployment.live_version == 1
    assert deployment.actor == "agent" and "[action" in deployment.reason
    page.goto(dashboard.url + "/ui/models/elec")
    expect(page.locator("#dep-live")).to_have_text("v1")
    expect(page.locator("#history tbody tr").first).to_contain_text("agent")
    incident = AgentRepo(dashboard.store).get_incident(approval["incident_id"])
    assert incident["state"] == "verifying"
    assert incident["actions"][0]["state"] == "done"
    audit = dashboard.store.audit_entries(actor="olivia", action="approval.approve")
    assert audit and audit[0]["details"]["reason"] == "latency is hurting checkout"
    page.goto(dashboard.url + f"/ui/incidents/{approval['incident_id']}")
    expect(page.locator("#incident-head")).to_contain_text("verifying")
    expect(row.locator('[data-field="action-progress"]')).to_have_text("done")
    # the decision is explained once, in its section; the timeline gives its one sentence
    assert "windows flagged (rule:" in incident["decisions"][0]["rationale"]
    assert "windows flagged (rule:" not in page.content()
    expect(page.locator(".decision .reasons")).to_have_count(1)
    expect(page.locator("#timeline")).to_contain_text("The agent wants to switch to the fallback")
    operator.clean()


def test_rejecting_is_recorded(operator: Watched, dashboard: Dashboard) -> None:
    page = operator.page
    approval = pending(dashboard)["elec-eu"]
    page.goto(dashboard.url + "/ui/approvals")
    card = page.locator(f"#approval-{approval['id']}")
    card.locator("input[name=reason]").fill("a release is going out, not now")
    card.locator("button.reject").click()
    expect(page.locator(".flash")).to_contain_text("Rejected: fallback on elec-eu")
    row = page.locator("#decided tbody tr", has_text="elec-eu")
    expect(row).to_contain_text("rejected")
    expect(row).to_contain_text("olivia")
    expect(row).to_contain_text("a release is going out, not now")
    stored = Approvals(dashboard.store).get(approval["id"])
    assert stored["state"] == "rejected" and stored["decided_by"] == "olivia"
    assert dashboard.store.get_deployment("elec-eu").live_version == 2  # type: ignore[union-attr]
    page.goto(dashboard.url + "/ui/audit?kind=approval")
    expect(page.locator("#audit tbody tr", has_text="approval.reject")).to_have_count(1)
    screenshot(page, "audit-filtered")
    operator.clean()


def test_reports_download_in_three_formats(operator: Watched, dashboard: Dashboard) -> None:
    page = operator.page
    incident = AgentRepo(dashboard.store).list_incidents(model="elec")[0]
    page.goto(dashboard.url + f"/ui/incidents/{incident['id']}")
    texts = {}
    for label in ("Markdown", "HTML", "JSON"):
        with page.expect_download() as info:
            page.get_by_role("link", name=label, exact=True).click()
        download = info.value
        texts[label] = open(download.path(), encoding="utf-8").read()  # noqa: SIM115
        assert download.suggested_filename.startswith(f"incident-{incident['id']}.")
    assert "elec" in texts["Markdown"] and texts["Markdown"].lstrip().startswith("#")
    assert "<html" in texts["HTML"].lower()
    body = json.loads(texts["JSON"])
    assert body["incident"]["id"] == incident["id"]
    assert body["diagnosis"]["severity"] in ("low", "medium", "high", "critical")
    operator.clean()


def test_undo_restores_an_earlier_revision(operator: Watched, dashboard: Dashboard) -> None:
    page = operator.page
    # elec on its fallback v1, as the approval test leaves it: written here too, so the test
    # does not need that one to have run before it on this server
    dashboard.store.set_deployment(
        "elec",
        DeploymentState(live_version=1, fallback_version=2),
        actor="agent",
        reason="latency: fall back to v1",
    )
    page.goto(dashboard.url + "/ui/models/elec")
    expect(page.locator("#dep-live")).to_have_text("v1")
    page.fill("#undo-reason-2", "fallback no longer needed")
    page.get_by_role("button", name="Restore revision 2").click()
    expect(page.locator(".flash")).to_contain_text("Revision 2 restored")
    after = dashboard.store.get_deployment("elec")
    assert after is not None and after.live_version == 2 and after.actor == "olivia"
    assert after.reason == "fallback no longer needed"
    expect(page.locator("#dep-live")).to_have_text("v2")
    operator.clean()


def test_monitoring_switch_and_signal_export(operator: Watched, dashboard: Dashboard) -> None:
    page = operator.page
    repo = AgentRepo(dashboard.store)
    window = (repo.last_window("elec-eu") or 0) + 1  # a window of its own to find in the export
    repo.save_window("elec-eu", window, utcnow() + timedelta(minutes=1), {"accuracy": 0.25}, [])
    page.goto(dashboard.url + "/ui/models/elec-eu")
    page.get_by_role("button", name="Stop monitoring").click()
    expect(page.locator("#monitoring-state")).to_contain_text("off")
    assert dashboard.store.is_monitored("elec-eu") is False
    page.get_by_role("button", name="Start monitoring").click()
    assert dashboard.store.is_monitored("elec-eu") is True
    csv_text = page.request.get(dashboard.url + "/ui/models/elec-eu/signals.csv").text()
    header, *lines = csv_text.strip().splitlines()
    assert header == "window,ts,name,value"
    assert any(line.startswith(f"{window},") and ",accuracy,0.25" in line for line in lines)
    rows = page.request.get(dashboard.url + "/ui/models/elec-eu/signals.json").json()
    assert {"window", "ts", "name", "value"} == set(rows[0])
    assert len(rows) == len(lines)
    operator.clean()


def test_diagnose_and_assistant_answer(operator: Watched, dashboard: Dashboard) -> None:
    page = operator.page
    page.goto(dashboard.url + "/ui/diagnose")
    page.fill("#text", "p99 latency tripled after the deploy this morning and requests time out")
    page.get_by_role("button", name="Diagnose").click()
    answer = page.locator("#answer article").first
    expect(answer.locator(".sev")).to_be_visible()
    expect(answer.locator("h3", has_text="Checks")).to_be_visible()
    screenshot(page, "diagnose-answer")
    page.goto(dashboard.url + "/ui/assistant")
    page.fill("#cmd", "list models")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#reply")).to_contain_text("elec-eu")
    screenshot(page, "assistant-answer")
    operator.clean()


def test_wide_screen_overview(viewer: Watched, dashboard: Dashboard) -> None:
    viewer.page.set_viewport_size({"width": 1920, "height": 1080})
    for watched in (viewer,):
        expect(watched.page.locator("table.fleet tbody tr")).to_have_count(3)
        screenshot(watched.page, "overview-1920")
        watched.page.goto(dashboard.url + "/ui/models/elec")
        expect(watched.page.locator("#chart-performance .main-svg").first).to_be_visible()
        # viewers get no operator controls
        expect(watched.page.get_by_role("button", name="Stop monitoring")).to_have_count(0)
        expect(watched.page.locator("#history form")).to_have_count(0)
        screenshot(watched.page, "model-1920")
        watched.clean()


def test_an_operator_acknowledges_and_annotates_an_incident_and_a_viewer_sees_it_live(
    operator: Watched, viewer: Watched, dashboard: Dashboard
) -> None:
    # an incident of its own (last in the file: the incident list of the tests before it
    # counts the fleet's incidents), on the model without data
    incident = AgentRepo(dashboard.store).create_incident("titanic", 1, {}, "nulls in Age")
    url = dashboard.url + f"/ui/incidents/{incident}"
    viewer.page.goto(url)
    oncall = viewer.page.locator("#oncall")
    expect(oncall).to_contain_text("need the operator role")
    expect(oncall.locator("form")).to_have_count(0)
    viewer.page.evaluate("window.__not_reloaded = true")

    page = operator.page
    page.goto(url)
    section = page.locator("#oncall")
    expect(section).to_contain_text("never change what the agent does")
    expect(section.locator('[data-field="acknowledged"]')).to_have_text("not yet")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".flash")).to_contain_text("Acknowledged by olivia")
    expect(section.locator('[data-field="acknowledged"]')).to_contain_text("by olivia at ")
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)

    page.fill("#assignee", "ann")
    page.get_by_role("button", name="Assign").click()
    expect(section.locator('[data-field="assignee"]')).to_contain_text("ann (assigned by olivia")
    page.fill("#note-text", "Age nulls come from the new signup form; fix deployed at 14:10.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".flash")).to_have_text("Note added.")
    note = section.locator("#notes li")
    expect(note).to_have_count(1)
    expect(note).to_contain_text("Age nulls come from the new signup form")
    expect(note).to_contain_text("olivia")
    timeline = page.locator("#timeline li")
    expect(timeline.filter(has_text="acknowledged by olivia")).to_have_count(1)
    noted = timeline.filter(has_text="note Age nulls come from the new signup form")
    expect(noted).to_contain_text("— olivia")
    screenshot(page, "incident-oncall")

    # the viewer's open page follows without a reload
    expect(oncall.locator('[data-field="acknowledged"]')).to_contain_text(
        "by olivia at ", timeout=15_000
    )
    expect(oncall.locator('[data-field="assignee"]')).to_contain_text("ann", timeout=15_000)
    expect(viewer.page.locator("#timeline li").filter(has_text="— olivia")).to_have_count(
        1, timeout=15_000
    )
    assert viewer.page.evaluate("window.__not_reloaded") is True
    actions = [e["action"] for e in dashboard.store.audit_entries(target=f"incident:{incident}")]
    assert actions == ["incident.annotate", "incident.assign", "incident.acknowledge"]
    operator.clean()
    viewer.clean()
