"""Only one agent acts on a store; a second one waits and takes over when the first dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlwarden.agent.loop import Agent
from mlwarden.agent.monitor_source import NoNewWindows
from mlwarden.store.leadership import Leadership
from mlwarden.store.repository import Store

HOLDER = """
import sys, time
from mlwarden.store.leadership import Leadership
from mlwarden.store.repository import Store
leader = Leadership(Store(sys.argv[1]), None)
assert leader.acquire()
print("leader", flush=True)
time.sleep(600)
"""


def hold_in_subprocess(url: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "leader"
    return proc


def takeover(url: str) -> None:
    store = Store(url)
    proc = hold_in_subprocess(url)
    try:
        second = Leadership(store)
        assert not second.acquire(), "two leaders at once"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not second.acquire():
            assert time.monotonic() < deadline, "the lock was not released by the dead leader"
            time.sleep(0.2)
        assert second.held
        third = Leadership(store)
        assert not third.acquire()
        second.release()
        assert third.acquire()
        third.release()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        store.close()


def test_sqlite_lock_file_takeover(tmp_path: Path) -> None:
    takeover(f"sqlite:///{tmp_path / 'mlwarden.db'}")


@pytest.mark.postgres
def test_postgres_advisory_lock_takeover(pg_url: str) -> None:
    takeover(pg_url)


def test_run_forever_waits_for_the_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mlwarden.db'}"
    store = Store(url)
    holder = Leadership(store)
    assert holder.acquire()
    passes: list[int] = []
    stop = threading.Event()
    agent = Agent(store, source=NoNewWindows())
    thread = threading.Thread(
        target=agent.run_forever,
        kwargs={"interval_s": 0.05, "stop": stop, "on_pass": lambda s: passes.append(1)},
    )
    thread.start()
    time.sleep(0.5)
    assert passes == [], "the waiting agent acted while another held the lock"
    holder.release()
    deadline = time.monotonic() + 20
    while not passes and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=20)
    assert passes, "the waiting agent never took over"
    store.close()
