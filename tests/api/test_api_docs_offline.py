"""/docs and /redoc work on a machine without internet access: every script, style sheet and icon
they reference is served by the server itself, from the installed package.

Over real HTTP (Uvicorn), with tokens required and a viewer's token, as a browser would open it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from api_helpers import make_settings

from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.store import Store

# what each kind of asset must be served as, for the browser to run or apply it
ASSET_TYPES = {
    ".js": ("application/javascript", "text/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
}


class _References(HTMLParser):
    """Every URL a page makes the browser load: script ``src``, link ``href``, image ``src``."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def _references(page: str) -> list[str]:
    parser = _References()
    parser.feed(page)
    return parser.urls


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A real server with tokens required, and a viewer's bearer header."""
    folder = tmp_path_factory.mktemp("docs")
    settings = make_settings(folder, auth=True)
    with Store(settings.resolved_database_url) as store:
        token = store.create_token("reader", "viewer")
    with BackgroundServer(create_app(settings)) as server:
        yield server.url, {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_page_loads_only_what_the_server_serves(
    served: tuple[str, dict[str, str]], page: str
) -> None:
    url, viewer = served
    with httpx.Client(base_url=url, timeout=30) as http:
        response = http.get(page, headers=viewer)
        assert response.status_code == 200
        html = response.text
        # no absolute or protocol-relative URL anywhere in the page, inline script included
        assert not re.search(r"(https?:)?//[a-z0-9]", html, re.IGNORECASE), html
        references = _references(html)
        kinds = {Path(urlsplit(ref).path).suffix for ref in references}
        assert ".js" in kinds, references  # the page is nothing without its script
        if page == "/docs":
            assert ".css" in kinds, references
        for reference in references:
            parts = urlsplit(reference)
            assert not parts.scheme and not parts.netloc and parts.path.startswith("/"), reference
            # the assets need no token: the browser fetches them without the page's header
            asset = http.get(reference)
            assert asset.status_code == 200, reference
            media = asset.headers["content-type"].split(";")[0].strip()
            assert media in ASSET_TYPES[Path(parts.path).suffix], (reference, media)
            assert len(asset.content) > 1000, reference  # the real file, not an error page
        assert "/openapi.json" in html


def test_swagger_ui_is_a_release_that_renders_openapi_3_1(
    served: tuple[str, dict[str, str]],
) -> None:
    """FastAPI writes OpenAPI 3.1; Swagger UI before 5.0 shows 'Unable to render this
    definition' for it, so the bundle served must be a 5.x release."""
    url, viewer = served
    with httpx.Client(base_url=url, timeout=30) as http:
        document = http.get("/openapi.json", headers=viewer).json()
        assert document["openapi"].startswith("3.1")
        script = next(
            ref for ref in _references(http.get("/docs", headers=viewer).text) if ref.endswith("js")
        )
        bundle = http.get(script).text
    # Swagger UI 5's OpenAPI 3.1 plugin; 4.x has none of it
    assert "isOAS31" in bundle and "OpenAPI31" in bundle


def test_the_pages_stay_closed_while_their_assets_are_open(
    served: tuple[str, dict[str, str]],
) -> None:
    url, _viewer = served
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/docs").status_code == 401
        assert http.get("/openapi.json").status_code == 401
        assert http.get("/docs/assets/swagger-ui.css").status_code == 200
        assert http.get("/docs/assets/no-such-file.js").status_code == 404
