"""An investigation from the dashboard in a real headless Chromium against a real server (auth
on): an operator fills the form with a sample file, the investigation's page follows the job
live (its progress moves without a reload) against a real scikit-learn model behind its own HTTP
server that degrades midway, then shows the finding, the diagnosis and the report to download."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from conftest import screenshot
from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.settings import Settings
from mlwarden.store import Store
from model_http import ModelServer, probe_policy, sample_rows

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    policy = probe_policy(tmp_path)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'mlwarden.db'}",
        auth=True,
        agent_policy=policy,
        agent_in_server=False,
        ui_refresh_s=1.0,  # the investigation's page asks for its progress every second
    )
    with Store(settings.resolved_database_url) as store:
        tokens = {"operator": store.create_token("olivia", "operator")}
    with BackgroundServer(create_app(settings)) as server:
        yield server.url, tokens


def test_an_operator_investigates_a_url_and_sees_it_progress_to_its_finding(
    browser: Any, served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, tokens = served
    model = ModelServer()
    model.degrade_after(150 + 60, "collapse")
    sample = tmp_path / "sample.csv"
    rows = sample_rows()
    with sample.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        page.goto(url + "/ui/")
        page.fill("#token", tokens["operator"])
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Fleet overview")
        page.get_by_role("link", name="Investigations").click()
        expect(page.locator("h1")).to_have_text("Investigations")
        page.fill("#inv-url", model.url)
        page.set_input_files("#inv-sample", str(sample))
        page.fill("#inv-target", "label")
        page.fill("input[name=baseline]", "150")
        page.fill("input[name=windows]", "3")
        page.fill("input[name=window_size]", "60")
        page.fill("input[name=rate_per_s]", "60")  # ~6 s: the page asks every second
        page.click("#investigate")
        expect(page).to_have_url(re.compile(r"/ui/investigations/1\?msg="))
        expect(page.locator(".flash")).to_have_text("Investigation #1 started: 330 probes.")

        # the list, open in another tab, follows it too
        listing = context.new_page()
        listing.on("pageerror", lambda e: problems.append(str(e)))
        listing.goto(url + "/ui/investigations")
        listing.evaluate("window.__sameDocument = true")
        expect(listing.locator('#investigations tr[data-id="1"]')).not_to_have_attribute(
            "data-state", "done"
        )

        # the progress moves while the job runs, without a reload (the marker survives)
        page.evaluate("window.__sameDocument = true")
        first = int(page.locator("#inv-progress").get_attribute("value") or 0)
        page.wait_for_function(
            f"() => window.__sameDocument === true && "
            f"Number(document.getElementById('inv-progress').value) > {first} && "
            "Number(document.getElementById('inv-progress').value) < 330",
            timeout=60_000,
        )
        expect(page.locator('#progress-card [data-field="stage"]')).not_to_have_text("queued")

        # once it has ended the page reloads itself with the finding and the diagnosis
        expect(page.locator("#diagnosis")).to_contain_text("Confidence collapse", timeout=120_000)
        assert page.evaluate("window.__sameDocument === undefined")
        expect(page.locator('#investigation-head [data-field="state"]')).to_have_text("done")
        expect(page.locator('#windows tr[data-window="1"]')).to_contain_text("prediction_drift")
        expect(page.locator('#windows tr[data-window="0"]')).to_contain_text("none")
        expect(page.locator("#verdict")).to_contain_text("Incident")
        expect(page.locator("#recommendations")).to_contain_text("fallback")
        with page.expect_download() as download:
            page.get_by_role("link", name="Markdown").click()
        report = Path(download.value.path()).read_text()
        assert report.startswith("# Incident report") and "Confidence collapse" in report
        screenshot(page, "investigation")

        listed = listing.locator('#investigations tr[data-id="1"]')
        expect(listed.locator('[data-field="verdict"]')).to_contain_text(
            "Confidence collapse", timeout=15_000
        )
        expect(listed.locator('[data-field="verdict"] .sev')).to_have_text("high")
        expect(listed.locator('[data-field="state"]')).to_have_text("done")
        assert listing.evaluate("window.__sameDocument === true")  # not reloaded

        page.get_by_role("link", name="All investigations").click()
        row = page.locator('#investigations tr[data-id="1"]')
        expect(row.locator('[data-field="state"]')).to_have_text("done")
        expect(row.locator('[data-field="verdict"]')).to_contain_text("Confidence collapse")
        expect(row.locator('[data-field="probes"]')).to_have_text("330 / 330")
        screenshot(page, "investigations")
        assert problems == []
    finally:
        context.close()
        model.close()
