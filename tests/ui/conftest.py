"""Fixtures of the dashboard tests: a real server (Uvicorn, auth on) over a real fleet, and a
headless Chromium driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import build_fleet

from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.settings import Settings
from mlwarden.store import Store

# Debian's package by default; scripts/test-services.sh names another one it found
CHROMIUM = os.environ.get("MLWARDEN_TEST_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


class Dashboard:
    """The running server, its store and the tokens of each role."""

    def __init__(
        self, url: str, store: Store, app: Any, tokens: dict[str, str], fleet: dict[str, Any]
    ) -> None:
        self.url = url
        self.store = store
        self.app = app
        self.tokens = tokens
        self.fleet = fleet


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    folder = tmp_path_factory.mktemp("ui")
    settings = Settings(
        data_dir=folder / "data",
        database_url=f"sqlite:///{folder / 'mlwarden.db'}",
        auth=True,
        write_flush_interval_s=0.05,
        ui_refresh_s=1.0,  # the live updates the walk waits for: every second, not every 5 s
    )
    store = Store(settings.resolved_database_url)
    tokens = {
        "admin": store.create_token("root", "admin"),
        "operator": store.create_token("olivia", "operator"),
        "viewer": store.create_token("victor", "viewer"),
    }
    app = create_app(settings, store)
    server = BackgroundServer(app).start()
    try:

        def flush() -> None:
            assert app.state.mlwarden.writer.flush(timeout=30)

        fleet = build_fleet(server.url, tokens["admin"], store, flush)
        yield Dashboard(server.url, store, app, tokens, fleet)
    finally:
        server.stop()
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
