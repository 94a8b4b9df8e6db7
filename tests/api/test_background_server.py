"""Servers started by tests and benchmarks bind a port nobody else can take first."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import mlwarden.server.background as background
from mlwarden.server.app import create_app
from mlwarden.server.background import BackgroundServer, PortTaken, ServerProcess
from mlwarden.settings import Settings


@pytest.fixture()
def taken_port() -> Iterator[int]:
    """A port another process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_background_servers_bind_a_port_the_kernel_picks(tmp_path: Path) -> None:
    first = BackgroundServer(create_app(Settings(data_dir=tmp_path / "a")))
    second = BackgroundServer(create_app(Settings(data_dir=tmp_path / "b")))
    with first, second:
        assert first.port and second.port and first.port != second.port
        for server in (first, second):
            assert httpx.get(server.url + "/health", timeout=30).status_code == 200


@pytest.mark.slow
def test_a_server_process_whose_port_was_taken_meanwhile_moves_to_another(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = iter([taken_port])  # the port looked free when it was chosen, then was taken
    pick = background.free_port
    monkeypatch.setattr(background, "free_port", lambda host="127.0.0.1": next(chosen, 0) or pick())
    with ServerProcess(tmp_path / "moved") as server:
        assert server.port != taken_port
        assert httpx.get(server.url + "/health", timeout=30).status_code == 200
    # a port the caller asked for is not changed behind its back: a clear error
    with pytest.raises(PortTaken, match=r"(?i)address already in use"):
        ServerProcess(tmp_path / "asked", port=taken_port).start()
