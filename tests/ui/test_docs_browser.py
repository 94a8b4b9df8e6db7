"""/docs and /redoc render the API in a real headless Chromium with every other host unreachable:
what a user on a machine without internet access sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.settings import Settings

pytestmark = pytest.mark.browser

# ReDoc's "API docs by Redocly" footer always asks its vendor's CDN for a logo, and hides the
# image when that fails: the one request of these pages that leaves the machine
REDOC_BADGE = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with tokens required and its API description open, as a team would publish it."""
    folder: Path = tmp_path_factory.mktemp("docs-browser")
    settings = Settings(
        data_dir=folder / "data",
        database_url=f"sqlite:///{folder / 'mlwarden.db'}",
        auth=True,
        bootstrap_admin_token="mlw_docs-browser-admin",
        docs_public=True,
        agent_in_server=False,
    )
    with BackgroundServer(create_app(settings)) as server:
        yield server.url


def _offline_page(browser: Any, base: str) -> tuple[Any, list[str], list[str]]:
    """A page on which every request to another host fails, as it does offline; the requests
    it tried there and its console errors are collected."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    foreign: list[str] = []
    errors: list[str] = []
    host = urlparse(base).netloc

    def route(request_route: Any) -> None:
        url = urlparse(request_route.request.url)
        if url.scheme in ("data", "blob") or url.netloc == host:
            request_route.continue_()
        else:
            foreign.append(request_route.request.url)
            request_route.abort("internetdisconnected")

    page.route("**/*", route)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, foreign, errors


def test_swagger_ui_renders_every_operation_offline(browser: Any, docs_server: str) -> None:
    page, foreign, errors = _offline_page(browser, docs_server)
    try:
        page.goto(docs_server + "/docs")
        # one block per operation of the document; an unrenderable document shows none
        expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
        expect(page.locator(".opblock-summary-path[data-path='/v1/models']").first).to_be_visible()
        assert page.locator(".opblock").count() > 20
        assert page.get_by_text("Unable to render this definition").count() == 0
        # the operation's details open in place, with its request body schema
        page.locator(".opblock-summary-path[data-path='/v1/models']").first.click()
        expect(page.locator(".opblock-body").first).to_be_visible()
    finally:
        page.context.close()
    assert foreign == []
    assert errors == []


def test_redoc_renders_the_api_offline(browser: Any, docs_server: str) -> None:
    page, foreign, errors = _offline_page(browser, docs_server)
    try:
        page.goto(docs_server + "/redoc")
        expect(page.locator("h1").first).to_contain_text("mlwarden", timeout=30_000)
        # the operations are listed in the side menu
        expect(page.locator("[role=menuitem]").first).to_be_visible()
        assert page.locator("[role=menuitem]").count() > 20
        expect(page.locator("img[alt='redocly logo']")).to_have_count(0)  # hidden, not broken
    finally:
        page.context.close()
    assert set(foreign) <= {REDOC_BADGE}, foreign
    assert [e for e in errors if "ERR_INTERNET_DISCONNECTED" not in e] == []
