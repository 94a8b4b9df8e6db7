"""The servers the gateway benchmark puts mlwarden against, each started as a child process.

- ``floor``: the bare Starlette handler with the same model (``bench/gateway_floor.py``), in
  this interpreter;
- ``mlwarden``: ``mlwarden serve --no-agent`` (SQLite, every prediction recorded);
- ``mlserver``: Seldon MLServer with its scikit-learn runtime, ``parallel_workers: 0`` (the
  model runs in the server process: no hop to an inference worker), V2 inference protocol;
- ``bentoml``: a BentoML service with one worker and an ``async`` API (answered on the event
  loop, as mlwarden and the floor do).

MLServer and BentoML run from their own virtualenvs (``--mlserver-venv``, ``--bentoml-venv``:
never the project's), with the same model: the artifact is written as skops for BentoML and as
joblib for MLServer (its runtime loads joblib), from the same fitted estimator. Each server
gets the same client and the same rows; only the body's shape differs where the protocol
requires it (MLServer's V2 tensors).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import joblib

from mlwarden.server.background import ServerProcess, free_port

FLOOR = Path(__file__).with_name("gateway_floor.py")
PREDICT_PATH = "/v1/models/elec/predict"


@dataclass
class Running:
    """One started server: where to send requests, its process, and how to stop it."""

    name: str
    port: int
    pid: int
    path: str
    bodies: list[bytes]
    stop: Callable[[], None]
    after: dict[str, Any] = field(default_factory=dict)


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants (BentoML serves from children)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        pending.extend(int(c) for c in children)
    return total / 1024


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants."""
    total = 0.0
    pending = [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
        pending.extend(int(c) for c in children)
    return total


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready within {timeout_s} s: {log.read_text()[-3000:]}")


def _child(
    name: str,
    command: list[str],
    ready: str,
    folder: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 180.0,
) -> tuple[subprocess.Popen[bytes], Callable[[], None]]:
    log_path = folder / f"{name}.log"
    log: IO[bytes] = log_path.open("ab")
    process = subprocess.Popen(
        command,
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # its own process group: stop() ends its children too
    )

    def stop() -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
        log.close()

    try:
        _wait_ready(ready, process, log_path, timeout_s)
    except Exception:
        stop()
        raise
    return process, stop


def start_floor(folder: Path, artifact: bytes, bodies: list[bytes], **_: Any) -> Running:
    path = folder / "model.skops"
    path.write_bytes(artifact)
    port = free_port()
    command = [sys.executable, str(FLOOR), str(port), str(path)]
    process, stop = _child("floor", command, f"http://127.0.0.1:{port}/health", folder)
    return Running("floor", port, process.pid, PREDICT_PATH, bodies, stop)


def migrate_store(data_dir: Path, source: Path | None) -> None:
    """Open (and so create and migrate) the store in ``data_dir`` with the mlwarden in
    ``source`` (this interpreter's when None), then close it."""
    code = (
        "from mlwarden.settings import Settings\n"
        "from mlwarden.store import Store\n"
        f"Store.from_settings(Settings(data_dir={str(data_dir)!r})).close()\n"
    )
    env = {**os.environ, **({"PYTHONPATH": str(source)} if source is not None else {})}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)


def start_mlwarden(
    folder: Path,
    artifact: bytes,
    bodies: list[bytes],
    set_up: Callable[[str, bytes], None],
    source: Path | None = None,
    **_: Any,
) -> Running:
    """``mlwarden serve --no-agent``; from the sources in ``source`` (e.g. an export of main,
    for a before/after in the same run) instead of this interpreter's mlwarden when given.

    The database is created and migrated first, in a process of its own, so the server opens
    it as it does on every restart (at the newest revision), not as on its very first start."""
    migrate_store(folder / "data", source)
    server = ServerProcess(folder / "data", source=source).start()
    set_up(server.url, artifact)
    pid = server.process.pid  # type: ignore[union-attr]
    name = "mlwarden" if source is None else "mlwarden-base"
    return Running(name, server.port, pid, PREDICT_PATH, bodies, server.stop)


def start_mlserver(
    folder: Path,
    model: Any,
    rows: list[dict[str, float]],
    features: list[str],
    venv: Path,
    **_: Any,
) -> Running:
    model_dir = folder / "elec"
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "elec",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    port = free_port()
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": 0,
                "host": "127.0.0.1",
            }
        )
    )
    bodies = [
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [1, len(features)],
                        "datatype": "FP64",
                        "data": [row[name] for name in features],
                    }
                ],
                "outputs": [{"name": "predict_proba"}],
            }
        ).encode()
        for row in rows
    ]
    command = [str(venv / "bin" / "mlserver"), "start", str(folder)]
    process, stop = _child(
        "mlserver",
        command,
        f"http://127.0.0.1:{port}/v2/models/elec/ready",
        folder,
        env={"OMP_NUM_THREADS": "1", "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}"},
    )
    return Running("mlserver", port, process.pid, "/v2/models/elec/infer", bodies, stop)


_BENTO_SERVICE = """
import warnings

import bentoml
import numpy as np
import skops.io

FEATURES = {features!r}


@bentoml.service(workers=1)
class Elec:
    def __init__(self) -> None:
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        data = open({path!r}, "rb").read()
        self.model = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
        self.classes = [str(c) for c in self.model.classes_]

    @bentoml.api
    async def predict(self, instances: dict) -> dict:
        x = np.array([[instances[name] for name in FEATURES]], dtype=float)
        proba = self.model.predict_proba(x)[0]
        return {{
            "prediction": self.classes[int(proba.argmax())],
            "probabilities": dict(zip(self.classes, map(float, proba))),
        }}
"""


def start_bentoml(
    folder: Path,
    artifact: bytes,
    bodies: list[bytes],
    features: list[str],
    venv: Path,
    **_: Any,
) -> Running:
    path = folder / "model.skops"
    path.write_bytes(artifact)
    (folder / "service.py").write_text(
        textwrap.dedent(_BENTO_SERVICE.format(features=features, path=str(path)))
    )
    port = free_port()
    command = [
        str(venv / "bin" / "bentoml"),
        "serve",
        "service:Elec",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {
        "OMP_NUM_THREADS": "1",
        "BENTOML_HOME": str(folder / "bentoml-home"),
        "BENTOML_DO_NOT_TRACK": "true",
        "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
    }
    process, stop = _child("bentoml", command, f"http://127.0.0.1:{port}/readyz", folder, env)
    return Running("bentoml", port, process.pid, "/predict", bodies, stop)
