"""The diagnosis process ends with the server that started it, however the server ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# a server's part in this: a store on disk, the diagnosis process started, its pid printed
SERVER = """
import os, sys, time
from mlwarden.store import Store
from mlwarden.ui.diagnosis_process import DiagnosisProcess

store = Store(sys.argv[1])
process = DiagnosisProcess()
assert process.wait_started(store, timeout_s=120)
print(process._pool(store).submit(os.getpid).result(), flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by whoever adopted it) holds no memory and no connection
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_a_killed_server_leaves_no_diagnosis_process_behind(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, f"sqlite:///{tmp_path / 'mlwarden.db'}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        child = int(server.stdout.readline())
        assert alive(child)
        server.send_signal(signal.SIGKILL)  # a crash: nothing of the server runs after this
        server.wait(timeout=30)
        deadline = time.monotonic() + 30
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(child), "the diagnosis process outlived its server"
    finally:
        server.kill()
