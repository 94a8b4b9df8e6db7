"""The dashboard's static assets (our CSS and script, Plotly.js from the installed ``plotly``
package), served compressed under versioned URLs.

An asset's URL carries the first 16 hex digits of its content's SHA-256
(``/ui/assets/<version>/<name>``), so a browser may keep it for a year without asking again
(``immutable``): a new release changes the URL, not what an old URL answers. Each asset is
read and hashed once, when a page first links it, and gzip-compressed once, when a client
first asks for it, and kept in memory (Plotly.js goes from 4.8 MB to about 1.5 MB); the
compressed copy is sent to every client that accepts gzip.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import plotly

__all__ = ["ASSET_FILES", "Asset", "asset", "asset_url"]

ASSET_FILES: dict[str, tuple[Path, str]] = {
    "app.css": (Path(__file__).parent / "static" / "app.css", "text/css; charset=utf-8"),
    "app.js": (Path(__file__).parent / "static" / "app.js", "application/javascript"),
    "investigations.js": (
        Path(__file__).parent / "static" / "investigations.js",
        "application/javascript",
    ),
    "plotly.min.js": (
        Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
        "application/javascript",
    ),
}
ASSET_PREFIX = "/ui/assets"


@dataclass
class Asset:
    """One file's content, with the version its URL carries; compressed on first use."""

    name: str
    media_type: str
    version: str
    body: bytes
    _gzipped: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def gzipped(self) -> bytes:
        """The content gzip-compressed, made once (by the first request that wants it: a page
        that only links the asset does not wait for it)."""
        if self._gzipped is None:
            with self._lock:  # two first requests at once compress the file once
                if self._gzipped is None:
                    self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped


_loaded: dict[str, Asset] = {}
_lock = threading.Lock()


def asset(name: str) -> Asset:
    """The asset called ``name`` (one of :data:`ASSET_FILES`), read and hashed on first use.

    Raises KeyError for any other name."""
    found = _loaded.get(name)
    if found is not None:
        return found
    path, media_type = ASSET_FILES[name]
    with _lock:
        found = _loaded.get(name)
        if found is None:
            body = path.read_bytes()
            found = Asset(name, media_type, hashlib.sha256(body).hexdigest()[:16], body)
            _loaded[name] = found
    return found


def asset_url(name: str) -> str:
    """The versioned URL of an asset, for templates."""
    return f"{ASSET_PREFIX}/{asset(name).version}/{name}"
