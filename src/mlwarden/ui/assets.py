"""The dashboard's static assets (our CSS and script, Plotly.js from the installed ``plotly``
package), served compressed under versioned URLs.

An asset's URL carries the first 16 hex digits of its content's SHA-256
(``/ui/assets/<version>/<name>``), so a browser may keep it for a year without asking again
(``immutable``): a new release changes the URL, not what an old URL answers. Each asset is
read, hashed and gzip-compressed once, on its first use, and kept in memory (Plotly.js goes
from 4.8 MB to about 1.4 MB); the compressed copy is sent to every client that accepts gzip.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import plotly

__all__ = ["ASSET_FILES", "Asset", "asset", "asset_url"]

ASSET_FILES: dict[str, tuple[Path, str]] = {
    "app.css": (Path(__file__).parent / "static" / "app.css", "text/css; charset=utf-8"),
    "app.js": (Path(__file__).parent / "static" / "app.js", "application/javascript"),
    "plotly.min.js": (
        Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
        "application/javascript",
    ),
}
ASSET_PREFIX = "/ui/assets"


@dataclass(frozen=True)
class Asset:
    """One file's content, plain and gzip-compressed, with the version its URL carries."""

    name: str
    media_type: str
    version: str
    body: bytes
    gzipped: bytes


_loaded: dict[str, Asset] = {}
_lock = threading.Lock()


def asset(name: str) -> Asset:
    """The asset called ``name`` (one of :data:`ASSET_FILES`), loaded on first use.

    Raises KeyError for any other name."""
    found = _loaded.get(name)
    if found is not None:
        return found
    path, media_type = ASSET_FILES[name]
    with _lock:  # two first requests at once compress the file once
        found = _loaded.get(name)
        if found is None:
            body = path.read_bytes()
            found = Asset(
                name=name,
                media_type=media_type,
                version=hashlib.sha256(body).hexdigest()[:16],
                body=body,
                gzipped=gzip.compress(body, compresslevel=6, mtime=0),
            )
            _loaded[name] = found
    return found


def asset_url(name: str) -> str:
    """The versioned URL of an asset, for templates."""
    return f"{ASSET_PREFIX}/{asset(name).version}/{name}"
