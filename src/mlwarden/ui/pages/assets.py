"""Static assets: our CSS and script and Plotly.js (from the installed ``plotly`` package,
nothing is loaded from a CDN), gzip-compressed, cached for a year under versioned URLs
(:mod:`mlwarden.ui.assets`)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from mlwarden.errors import NotFound
from mlwarden.ui.assets import ASSET_FILES, asset
from mlwarden.ui.web import page_router

router = page_router()

A_YEAR_S = 365 * 24 * 3600
A_WEEK_S = 7 * 24 * 3600


def serve(request: Request, name: str, cache_control: str) -> Response:
    """The asset, compressed when the client accepts gzip; 304 when the client has it."""
    try:
        found = asset(name)
    except KeyError:
        raise NotFound(f"no dashboard asset {name!r}") from None
    etag = f'"{found.version}"'
    headers = {"Cache-Control": cache_control, "ETag": etag, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
        return Response(found.gzipped, media_type=found.media_type, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


@router.get("/assets/{version}/{name}")
def versioned_asset(request: Request, version: str, name: str) -> Response:
    """A versioned asset. An outdated version (a page rendered before an upgrade) gets today's
    content, to be checked again next time instead of kept."""
    current = name in ASSET_FILES and version == asset(name).version
    cache = f"public, max-age={A_YEAR_S}, immutable" if current else "no-cache"
    return serve(request, name, cache)


@router.get("/vendor/plotly.min.js")
def plotly_js(request: Request) -> Response:
    """Plotly.js under its unversioned URL (pages use the versioned one)."""
    return serve(request, "plotly.min.js", f"public, max-age={A_WEEK_S}")
