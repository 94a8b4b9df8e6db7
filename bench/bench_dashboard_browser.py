"""The dashboard in a real browser, on the demo's store: first paint of every page, and the user
guide's screenshots.

The demo scenario is simulated into a SQLite store (``demo.yaml``: the electricity model, a
null burst, then concept drift; the real agent opens, acts on and closes incidents and queues an
approval), or ``--store`` names one (``simulation.db`` of an earlier run; it is copied, so it is
left as it was). A real server (Uvicorn, in a thread, auth off: the browser is the local admin)
serves it and headless Chromium (Playwright; Debian's ``/usr/bin/chromium`` or
``$MLWARDEN_TEST_CHROMIUM``) opens the pages.

``paint`` (the default): each page is opened ``--repeat`` times in a fresh browser context (an
empty cache: every asset is fetched, as on a first visit) and then once more in the same
context (a later visit: the versioned assets come from the cache). Printed per page: the
median time to the first response byte, to the first contentful paint and to the load event
(the browser's Navigation and Paint Timing), and the bytes the page moved.

``screenshots``: the guide's pictures (docs/guide.md), ``--out`` (``docs/guide``): PNGs of
pages and of their sections at 1200 x 760 CSS pixels.

Run: ``.venv/bin/python bench/bench_dashboard_browser.py [paint|screenshots] [--store
simulation.db] [--repeat 5] [--out docs/guide]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.settings import Settings
from mlwarden.store import Store

CHROMIUM = os.environ.get("MLWARDEN_TEST_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1200, "height": 760}

TIMING = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  const bytes = performance.getEntriesByType("resource")
    .reduce((sum, r) => sum + (r.transferSize || 0), nav.transferSize || 0);
  return {ttfb: nav.responseStart, fcp: fcp ? fcp.startTime : null,
          load: nav.loadEventEnd, bytes: bytes};
}"""


@contextmanager
def demo_server(store_file: Path | None) -> Iterator[tuple[str, Store]]:
    """A server over the demo's store (simulated unless ``store_file`` is given): its URL."""
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "simulation.db"
        if store_file is None:
            from mlwarden.scenarios.simulate import Simulation
            from mlwarden.scenarios.spec import load_scenario

            t0 = time.perf_counter()
            result = Simulation(load_scenario("demo"), Path(folder) / "sim").run()
            print(f"simulated the demo scenario in {time.perf_counter() - t0:.1f} s")
            shutil.copyfile(result.out / "simulation.db", db)
        else:
            shutil.copyfile(store_file, db)
        settings = Settings(
            data_dir=Path(folder) / "data", database_url=f"sqlite:///{db}", auth=False
        )
        store = Store(settings.resolved_database_url)
        server = BackgroundServer(create_app(settings, store)).start()
        try:
            yield server.url, store
        finally:
            server.stop()
            store.close()


def pages_of(store: Store) -> dict[str, str]:
    """The pages to open, by a short name: every page of the navigation, the demo model's page,
    its open incident (the one that is diagnosed) and a closed one."""
    from mlwarden.store.incidents import CLOSED_STATES, AgentRepo

    model = store.model_names()[0]
    incidents = AgentRepo(store).list_incidents(model=model, limit=50)
    open_one = next((i for i in incidents if i["state"] not in CLOSED_STATES), incidents[0])
    closed = next((i for i in incidents if i["state"] in CLOSED_STATES), incidents[-1])
    return {
        "fleet": "/ui/",
        "model": f"/ui/models/{model}",
        "incidents": "/ui/incidents",
        "incident-open": f"/ui/incidents/{open_one['id']}",
        "incident-closed": f"/ui/incidents/{closed['id']}",
        "approvals": "/ui/approvals",
        "policy": "/ui/policy",
        "audit": "/ui/audit",
    }


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _visit(page: Any, url: str) -> dict[str, float]:
    page.goto(url, wait_until="load")
    # the paint entry can be recorded after the load event; wait for it rather than miss it
    page.wait_for_function(
        "performance.getEntriesByName('first-contentful-paint').length > 0", timeout=10_000
    )
    return dict(page.evaluate(TIMING))


def paint(args: argparse.Namespace) -> None:
    with demo_server(args.store) as (url, store), chromium() as browser:
        print(
            f"{'page':<16} {'visit':<6} {'ttfb ms':>8} {'first paint ms':>15} {'load ms':>8} "
            f"{'bytes':>11}"
        )
        for name, path in pages_of(store).items():
            cold: list[dict[str, float]] = []
            warm: list[dict[str, float]] = []
            for _ in range(args.repeat):
                context = browser.new_context(viewport=VIEWPORT)
                page = context.new_page()
                cold.append(_visit(page, url + path))
                warm.append(_visit(page, url + path))
                context.close()
            for visit, runs in (("first", cold), ("later", warm)):
                median = {k: statistics.median(r[k] for r in runs) for k in ("ttfb", "fcp", "load")}
                print(
                    f"{name:<16} {visit:<6} {median['ttfb']:8.0f} {median['fcp']:15.0f} "
                    f"{median['load']:8.0f} {int(statistics.median(r['bytes'] for r in runs)):>11,}"
                )


def shots_of(store: Store) -> list[tuple[str, str, str | None]]:
    """The guide's pictures: (file name, page, the section to picture or None for the top of
    the page)."""
    pages = pages_of(store)
    model = pages["model"]
    return [
        ("fleet", pages["fleet"], None),
        ("model", model, None),
        ("model-versions", model, "section[aria-labelledby=ver-h]"),
        ("compare", f"{model}/compare", None),
        ("incidents", pages["incidents"], None),
        ("incident", pages["incident-open"], None),
        ("incident-decision", pages["incident-open"], "section[aria-labelledby=act-h]"),
        ("incident-closed-decision", pages["incident-closed"], "section[aria-labelledby=act-h]"),
        ("incident-diagnosis", pages["incident-closed"], "section[aria-labelledby=diag-h]"),
        ("approvals", pages["approvals"], None),
        ("policy", pages["policy"], None),
    ]


def screenshots(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    with demo_server(args.store) as (url, store), chromium() as browser:
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        for name, path, section in shots_of(store):
            page.goto(url + path, wait_until="networkidle")
            target = args.out / f"{name}.png"
            if section is None:
                page.screenshot(path=str(target), animations="disabled")
            else:
                # a section taller than the window is pictured from its top, a window high
                element = page.locator(section)
                element.evaluate("el => el.scrollIntoView()")
                box = element.bounding_box()
                if box is not None and box["height"] > VIEWPORT["height"]:
                    page.screenshot(path=str(target), animations="disabled")
                else:
                    element.screenshot(path=str(target), animations="disabled")
            print(f"{target}: {target.stat().st_size:,} bytes")
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", choices=("paint", "screenshots"), default="paint")
    parser.add_argument("--store", type=Path, help="a demo simulation.db to copy")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/guide"))
    args = parser.parse_args()
    if args.what == "paint":
        paint(args)
    else:
        screenshots(args)


if __name__ == "__main__":
    main()
