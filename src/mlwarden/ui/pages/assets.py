"""Plotly.js from the installed ``plotly`` package (nothing is loaded from a CDN)."""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import Request
from fastapi.responses import (
    FileResponse,
    Response,
)

from mlwarden.ui.web import page_router

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

router = page_router()


@router.get("/vendor/plotly.min.js")
def plotly_js(request: Request) -> Response:
    """Plotly.js from the installed ``plotly`` package (nothing is loaded from a CDN)."""
    stat = PLOTLY_JS.stat()
    etag = f'"plotly-{plotly.__version__}-{int(stat.st_mtime)}-{stat.st_size}"'
    headers = {"Cache-Control": "public, max-age=604800, immutable", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return FileResponse(PLOTLY_JS, media_type="application/javascript", headers=headers)
