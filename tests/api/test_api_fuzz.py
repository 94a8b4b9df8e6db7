"""Property-based fuzzing of every operation of the server's own OpenAPI document (Schemathesis).

A real server (``mlwarden serve`` in its own process, real HTTP, auth on, an admin token) with
a real model registered and deployed; every operation gets a bounded number of generated
requests, valid and invalid, and each answer must be no 5xx (``not_a_server_error``) and
conform to the documented response (``response_schema_conformance``,
``content_type_conformance``).

``scripts/fuzz-api.sh`` runs this file with many more examples per operation
(``MLWARDEN_FUZZ_EXAMPLES``) and a fresh random seed, and prints what the server answered.

An operation failing for a bug another change fixes is marked ``xfail(strict=True)`` in
:data:`KNOWN_BUGS` with the request that fails: the mark goes once the fix is merged (strict,
so the test says so by failing as soon as the operation passes).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from api_helpers import ELEC_SPEC
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

import mlwarden
from mlwarden.server import create_app
from mlwarden.server.background import free_port
from mlwarden.settings import Settings

EXAMPLES = int(os.environ.get("MLWARDEN_FUZZ_EXAMPLES", "12"))
# the suite's run is repeatable; scripts/fuzz-api.sh sets this to 0 to explore new inputs
DERANDOMIZE = os.environ.get("MLWARDEN_FUZZ_DERANDOMIZE", "1") == "1"
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
ADMIN_TOKEN = "mlw_fuzz-admin-token"
# the model the server has; "ghost" is one it has not
MODEL_NAMES = ["elec", "ghost"]

# operation label -> the bug, the change fixing it, and a request that shows it
KNOWN_BUGS: dict[str, str] = {}


def fuzz_document(settings: Settings) -> dict[str, Any]:
    """The server's OpenAPI document, with model names drawn from the ones that matter.

    Random strings in ``{name}`` would almost all be unknown models (404 before the handler
    does anything): naming the real model most of the time reaches the handlers' code.
    """
    document = copy.deepcopy(create_app(settings).openapi())
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] == "name":
                    parameter["schema"] = {"type": "string", "enum": MODEL_NAMES}
    return document


@dataclass
class FuzzServer:
    url: str
    admin: dict[str, str]
    process: subprocess.Popen[bytes]
    # operation label -> status code -> how many answers
    answers: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:  # busy in a known bug: nothing left to flush
            self.process.kill()
            self.process.wait(30)


def start_fuzz_server(data_dir: Path, artifacts: dict[str, bytes]) -> FuzzServer:
    """``mlwarden serve`` in its own process (auth on, an admin token), ``elec`` deployed.

    Its own process, so a request that holds the server's interpreter (a known bug) cannot
    stall the fuzzer's timeouts, and killing it ends whatever that request left running.
    """
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(mlwarden.__file__).parents[1]),  # this checkout's package
        "MLWARDEN_AUTH": "true",
        "MLWARDEN_BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
        "MLWARDEN_WRITE_FLUSH_INTERVAL_S": "0.05",
    }
    command = [
        sys.executable,
        "-c",
        "from mlwarden.cli.main import app; app()",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--log-level",
        "warning",
        "--no-agent",
    ]
    with open(data_dir / "server.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    server = FuzzServer(url, {"Authorization": f"Bearer {ADMIN_TOKEN}"}, process)
    started = time.monotonic()
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        waited = time.monotonic() - started
        if process.poll() is not None or waited > 300:
            server.stop()
            raise RuntimeError(
                f"the server did not answer /health after {waited:.0f} s (exit code "
                f"{process.returncode}): {(data_dir / 'server.log').read_text()}"
            )
        time.sleep(0.2)
    _deploy_model(url, server.admin, artifacts)
    return server


def _deploy_model(url: str, admin: dict[str, str], artifacts: dict[str, bytes]) -> None:
    with httpx.Client(base_url=url, headers=admin, timeout=60) as client:
        assert client.post("/v1/models", json=ELEC_SPEC).status_code == 201
        for key in ("v1", "v2"):
            up = client.post(
                "/v1/models/elec/versions", files={"file": (f"{key}.skops", artifacts[key])}
            )
            assert up.status_code == 201, up.text
        deployed = client.put(
            "/v1/models/elec/deployment", json={"live_version": 1, "fallback_version": 2}
        )
        assert deployed.status_code == 200, deployed.text


@pytest.fixture(scope="module")
def fuzz_server(
    tmp_path_factory: pytest.TempPathFactory, elec_artifacts: dict[str, bytes]
) -> Iterator[FuzzServer]:
    server = start_fuzz_server(tmp_path_factory.mktemp("fuzz"), elec_artifacts)
    yield server
    server.stop()
    _report(server)


@pytest.fixture
def server_for(
    request: pytest.FixtureRequest,
    fuzz_server: FuzzServer,
    tmp_path: Path,
    elec_artifacts: dict[str, bytes],
) -> Iterator[Callable[[str], FuzzServer]]:
    """The shared server, or for an operation with a known bug a throwaway one, so what the
    bug does to the server (minutes of CPU holding it) does not spill onto the operations
    after it."""
    own: list[FuzzServer] = []

    def pick(label: str) -> FuzzServer:
        bug = KNOWN_BUGS.get(label)
        if bug is None:
            return fuzz_server
        if not own:
            request.applymarker(pytest.mark.xfail(strict=True, reason=bug))
            own.append(start_fuzz_server(tmp_path, elec_artifacts))
            own[0].answers = fuzz_server.answers
        return own[0]

    yield pick
    for server in own:
        server.stop()


def _report(fuzz: FuzzServer) -> None:
    """What the server answered, per operation (shown with ``pytest -s``)."""
    total = sum(sum(c.values()) for c in fuzz.answers.values())
    errors = sum(n for c in fuzz.answers.values() for s, n in c.items() if s >= 500)
    print(f"\nfuzzed {len(fuzz.answers)} operations with {total} requests; 5xx answers: {errors}")
    for label, counts in sorted(fuzz.answers.items()):
        print(f"  {label:55} {sum(counts.values()):6}  {dict(sorted(counts.items()))}")


schema = schemathesis.openapi.from_dict(fuzz_document(Settings(auth=True)))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the repository
    derandomize=DERANDOMIZE,
    # the first failing request is reported as it was: no shrinking, whose replays of a slow
    # request would multiply its cost
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_5xx_or_breaks_its_schema(
    case: Any, server_for: Callable[[str], FuzzServer]
) -> None:
    server = server_for(case.operation.label)
    # a known bug may be a request that takes minutes: fail it fast, the bug is known
    timeout = 5 if case.operation.label in KNOWN_BUGS else 30
    try:
        response = case.call(base_url=server.url, headers=server.admin, timeout=timeout)
    except requests.Timeout:
        server.answers[case.operation.label][-1] += 1  # -1: no answer within the timeout
        raise
    server.answers[case.operation.label][response.status_code] += 1
    case.validate_response(response, checks=CHECKS)
