"""Comparing and deploying versions, and the policy page, in a real headless Chromium against a
real server (auth on) with a configured policy file. Each test passes alone and in any order:
only the deploy test changes the deployment, and no other test reads it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from mlwarden.domain import DeploymentState, FeatureSpec, ModelSpec, Task
from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.settings import Settings
from mlwarden.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Served:
    def __init__(self, url: str, store: Store, tokens: dict[str, str], policy: Path) -> None:
        self.url = url
        self.store = store
        self.tokens = tokens
        self.policy = policy


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("versions")
    policy = folder / "policy.yaml"
    policy.write_text("defaults:\n  min_confidence: 0.75\n")
    settings = Settings(
        data_dir=folder / "data",
        database_url=f"sqlite:///{folder / 'mlwarden.db'}",
        auth=True,
        agent_policy=policy,
    )
    store = Store(settings.resolved_database_url)
    store.create_model(
        ModelSpec(name="m", task=Task.CLASSIFICATION, features=[FeatureSpec(name="x")], target="y")
    )
    for path in ("v1", "v2"):
        store.add_version("m", kind="remote", endpoint={"url": f"http://127.0.0.1:9/{path}"})
    store.set_deployment("m", DeploymentState(live_version=1), actor="t", reason="first")
    tokens = {
        "operator": store.create_token("olivia", "operator"),
        "viewer": store.create_token("victor", "viewer"),
    }
    server = BackgroundServer(create_app(settings, store)).start()
    try:
        yield Served(server.url, store, tokens, policy)
    finally:
        server.stop()
        store.close()


def signed_in(browser: Any, served: Served, role: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(served.url + "/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.fill("#token", served.tokens[role])
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Fleet overview")
    return page


def test_an_operator_compares_two_versions_and_makes_one_live(browser: Any, served: Served) -> None:
    page = signed_in(browser, served, "operator")
    page.goto(served.url + "/ui/models/m")
    row = page.locator('#versions tr[data-version="2"]')
    row.locator("a.compare").click()
    expect(page.locator("h1")).to_contain_text("m: v1 and v2")
    expect(page.locator("#compare-production")).to_contain_text("Records served")
    page.goto(served.url + "/ui/models/m")
    expect(page.locator('#versions tr[data-version="1"]')).to_contain_text("live")
    row.locator("input[name=reason]").fill("v2 answers faster")
    row.locator("button.deploy").click()
    expect(page.locator(".flash")).to_have_text("v2 is live (revision 2).")
    expect(page.locator("#dep-live")).to_have_text("v2")
    deployment = served.store.get_deployment("m")
    assert deployment is not None and deployment.live_version == 2
    assert deployment.actor == "olivia" and deployment.reason == "v2 answers faster"
    assert served.store.audit_entries(actor="olivia", limit=1)[0]["target"] == "m"
    page.context.close()


def test_a_viewer_reads_the_configured_policy_and_gets_no_deploy_button(
    browser: Any, served: Served
) -> None:
    page = signed_in(browser, served, "viewer")
    page.goto(served.url + "/ui/models/m")
    expect(page.locator("#versions")).to_be_visible()
    expect(page.locator("button.deploy")).to_have_count(0)
    page.get_by_role("link", name="Policy").click()
    expect(page.locator("#policy-source")).to_contain_text(str(served.policy))
    expect(page.locator("#policy-effective")).to_contain_text("min_confidence: 0.75")
    expect(page.locator("#policy-effective")).to_contain_text("max_actions_per_day: 6")
    expect(page.locator("#policy-file")).not_to_contain_text("max_actions_per_day")
    expect(page.locator("form[method=post]")).to_have_count(1)  # the sign-out form only
    page.context.close()
