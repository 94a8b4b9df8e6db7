"""Run an mlwarden app with Uvicorn in a background thread (tests, notebooks, demos).

>>> from mlwarden.api import create_app
>>> from mlwarden.settings import Settings
>>> with BackgroundServer(create_app(Settings(data_dir=tmp))) as server:  # doctest: +SKIP
...     httpx.get(server.url + "/health").json()["status"]
'ok'
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

__all__ = ["BackgroundServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class BackgroundServer:
    """Uvicorn serving ``app`` on ``host:port`` from a daemon thread; ``url`` once started."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", access_log=False, workers=1
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="mlw-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server thread exited before it started (see its log)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not start within {timeout_s} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask Uvicorn to exit (runs the app's shutdown: the record writer is flushed)."""
        self.server.should_exit = True
        self._thread.join(timeout_s)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
