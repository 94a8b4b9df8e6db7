"""Run an mlwarden app with Uvicorn in a background thread (tests, notebooks, demos), or
``mlwarden serve`` in a child process that can be killed (crash tests, benchmarks).

>>> from mlwarden.server import create_app
>>> from mlwarden.settings import Settings
>>> with BackgroundServer(create_app(Settings(data_dir=tmp))) as server:  # doctest: +SKIP
...     httpx.get(server.url + "/health").json()["status"]
'ok'
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import httpx
import uvicorn

import mlwarden
from mlwarden.server.app import create_app
from mlwarden.settings import Settings

__all__ = ["BackgroundServer", "ServerProcess", "free_port", "serve_in_background"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class BackgroundServer:
    """Uvicorn serving ``app`` on ``host:port`` from a daemon thread; ``url`` once started."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        # Without a port the socket binds port 0 and the kernel picks a free one as it binds:
        # a port found free beforehand can be taken by another process before Uvicorn binds it
        # (parallel test workers did).
        self.port = port or 0
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
        if not self.port:
            sockets = [sock for server in self.server.servers for sock in server.sockets]
            self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask Uvicorn to exit (runs the app's shutdown: the record writer is flushed)."""
        self.server.should_exit = True
        self._thread.join(timeout_s)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class PortTaken(RuntimeError):
    """The server could not bind its port: another process listens there."""


class ServerProcess:
    """``mlwarden serve --no-agent`` on loopback in a child process, with its own environment
    (``MLWARDEN_*`` settings), logging to ``<data_dir>/server.log``; ``agent=True`` runs the
    agent too, ``workers`` more than one process (PostgreSQL).

    ``kill()`` sends SIGKILL (nothing is flushed: a crash); ``stop()`` SIGTERM (a clean
    shutdown). The child imports the same mlwarden as this process.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        database_url: str | None = None,
        port: int | None = None,
        agent: bool = False,
        workers: int = 1,
        source: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.agent = agent
        self.workers = workers
        # the folder holding the ``mlwarden`` package to serve: this process's unless given
        # (a benchmark serves an export of another commit side by side)
        self.source = source or Path(mlwarden.__file__).resolve().parents[1]
        self._own_port = port is None
        self.port = port or free_port()
        self.database_url = database_url
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180.0) -> ServerProcess:
        # A port found free can be taken by another process before the child binds it: when
        # this process chose the port, a lost race is retried on another one.
        for _attempt in range(3):
            try:
                return self._start(timeout_s)
            except PortTaken:
                if not self._own_port:
                    raise
                self.port = free_port()
        return self._start(timeout_s)

    def _start(self, timeout_s: float) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "server.log"
        logged_before = log.stat().st_size if log.exists() else 0
        command = [
            sys.executable,
            "-c",
            "from mlwarden.cli.main import app; app()",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "warning",
            "--agent" if self.agent else "--no-agent",
            "--workers",
            str(self.workers),
        ]
        if self.database_url:
            command += ["--database-url", self.database_url]
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.source), env.get("PYTHONPATH")]))
        self._log = (self.data_dir / "server.log").open("ab")
        # a pipe nobody reads would fill up and stall the server
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._end(signal.SIGKILL, 30.0)  # closes the log
                text = log.read_text(errors="replace")
                if "address already in use" in text[logged_before:].lower():
                    raise PortTaken(text[logged_before:])
                raise RuntimeError(text)
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise TimeoutError(f"the server did not start within {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL the server (a crash) and wait for it to be gone."""
        self._end(signal.SIGKILL, 30.0)

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM: the server shuts down cleanly (the record writer flushes)."""
        self._end(signal.SIGTERM, timeout_s)

    def _end(self, sig: int, timeout_s: float) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def serve_in_background(settings: Settings) -> BackgroundServer:
    """The whole server (API, dashboard, and the agent if ``settings`` run it) on
    ``settings.port`` of the loopback interface, started; ``stop()`` ends it."""
    return BackgroundServer(create_app(settings), port=settings.port).start()
