"""The predict hot path: answered ahead of FastAPI with the same errors, a deployment changed
elsewhere seen after a background re-read, and a gateway-only server that never imports Polars."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from api_helpers import flush, state_of, wait_for
from fastapi.testclient import TestClient

import mlwarden
from mlwarden.domain import DeploymentState


def test_a_change_made_in_the_database_is_served_after_a_background_re_read(
    elec_client: TestClient, elec_rows: list[dict[str, float]]
) -> None:
    client = elec_client
    state = state_of(client)
    row = elec_rows[0]
    assert client.post("/v1/models/elec/predict", json={"instances": row}).json()["version"] == 1
    # written straight to the database, as another replica or SQL would: no invalidation here
    state.store.set_deployment("elec", DeploymentState(live_version=2), actor="elsewhere")
    state.gateway.refresh_s = 0.2
    time.sleep(0.3)
    # the first request after refresh_s is answered at once with the route in force, and starts
    # the one re-read; the change is served as soon as that read is done
    versions = []

    def switched() -> bool:
        response = client.post("/v1/models/elec/predict", json={"instances": row})
        assert response.status_code == 200, response.text
        versions.append(response.json()["version"])
        return versions[-1] == 2

    assert wait_for(switched, timeout_s=10)
    assert set(versions) <= {1, 2}
    flush(client)
    assert state.store.count_records("elec") == 1 + len(versions)  # every answer recorded


def test_a_model_deleted_elsewhere_is_refused_after_the_re_read(
    elec_client: TestClient, elec_rows: list[dict[str, float]]
) -> None:
    client = elec_client
    state = state_of(client)
    row = elec_rows[0]
    assert client.post("/v1/models/elec/predict", json={"instances": row}).status_code == 200
    flush(client)
    state.store.set_deployment("elec", DeploymentState(), actor="elsewhere")
    state.store.delete_model("elec", actor="elsewhere")
    state.gateway.refresh_s = 0.2
    time.sleep(0.3)

    def refused() -> bool:
        response = client.post("/v1/models/elec/predict", json={"instances": row})
        return response.status_code == 404

    assert wait_for(refused, timeout_s=10)
    response = client.post("/v1/models/elec/predict", json={"instances": row})
    assert response.json()["error"].startswith("unknown model 'elec'")


def test_the_hot_path_answers_errors_as_every_other_route(
    elec_client: TestClient, elec_rows: list[dict[str, float]]
) -> None:
    client = elec_client
    empty = client.post("/v1/models/elec/predict", content=b"  ")
    assert empty.status_code == 422, empty.text
    assert empty.json() == {
        "error": "the request body is empty; send a JSON document",
        "detail": {},
    }
    broken = client.post("/v1/models/elec/predict", content=b'{"instances": ')
    assert broken.status_code == 422
    assert broken.json()["error"].startswith("malformed JSON")
    unknown = client.post("/v1/models/nope/predict", json={"instances": elec_rows[0]})
    assert unknown.status_code == 404
    limit = state_of(client).settings.max_request_bytes
    huge = client.post(
        "/v1/models/elec/predict",
        content=b"{" + b" " * limit + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    assert huge.json()["detail"] == {"limit_bytes": limit}
    # the other methods on the path are FastAPI's, as before
    assert client.get("/v1/models/elec/predict").status_code == 405
    metrics = client.get("/metrics").text
    assert 'mlwarden_http_errors_total{status="404"} 1.0' in metrics


def _last_line_printed_by(code: str) -> str:
    """Run ``code`` in a fresh interpreter on this mlwarden: what a new server process loads."""
    source = str(Path(mlwarden.__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": source},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_gateway_only_server_imports_neither_polars_nor_the_agent(tmp_path: Path) -> None:
    """What ``mlwarden serve --no-agent`` loads at start: Polars alone was about 25 MB of its
    memory, the agent's modules more (docs/benchmarks.md, "Gateway overhead")."""
    code = (
        "import sys\n"
        "from mlwarden.cli.main import app\n"
        "from mlwarden.server.app import create_app\n"
        "from mlwarden.settings import Settings\n"
        f"create_app(Settings(data_dir={str(tmp_path)!r}))\n"
        "print(sorted(m for m in ('polars', 'mlwarden.agent.loop') if m in sys.modules))\n"
    )
    assert _last_line_printed_by(code) == "[]"


def test_a_server_keeps_what_it_holds_from_its_start_out_of_every_garbage_collection(
    tmp_path: Path,
) -> None:
    """A full collection walked the server's whole start (about 240,000 objects, 90-105 ms in
    which no request was answered, docs/benchmarks.md): with ``gc_freeze`` (``mlwarden
    serve``) the lifespan freezes what its start left, so a collection while serving walks
    only what came after; it unfreezes at the end."""
    code = (
        "import gc\n"
        "from fastapi.testclient import TestClient\n"
        "from mlwarden.server.app import create_app\n"
        "from mlwarden.settings import Settings\n"
        f"app = create_app(Settings(data_dir={str(tmp_path)!r}, auth=False, gc_freeze=True))\n"
        "with TestClient(app) as client:\n"
        "    assert client.get('/health').status_code == 200\n"
        "    gc.collect()\n"
        "    frozen, walked = gc.get_freeze_count(), len(gc.get_objects())\n"
        "print(frozen, walked, gc.get_freeze_count())\n"
    )
    frozen, walked, after = map(int, _last_line_printed_by(code).split())
    assert frozen > 100_000 and walked < frozen / 5, (frozen, walked)
    assert after == 0


def test_the_serve_command_freezes_its_start_and_its_workers_do_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mlwarden serve`` is a process that lives as long as its server: it turns
    ``gc_freeze`` on, for its own app and, through the environment, for its workers'."""
    import uvicorn

    import mlwarden.server
    from mlwarden.cli import serve as command

    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: served.append(app))
    # the app is the settings it was built with: nothing is started
    monkeypatch.setattr(mlwarden.server, "create_app", lambda settings: settings)
    command.serve(host="127.0.0.1", port=8000, data_dir=tmp_path, database_url=None,
                  log_level="warning", agent=False, workers=1)  # fmt: skip
    assert served and served[0].gc_freeze is True
    assert command._environment(served[0])["MLWARDEN_GC_FREEZE"] == "true"


def test_a_server_on_a_store_at_the_newest_revision_never_imports_alembic(tmp_path: Path) -> None:
    """Alembic, Mako and Pygments were about 12 MB of the gateway's memory; a store already at
    the newest revision is recognised with one plain query (the migrations' ``HEADS``)."""
    from mlwarden.settings import Settings
    from mlwarden.store import Store

    Store.from_settings(Settings(data_dir=tmp_path)).close()  # migrated here, once
    code = (
        "import sys\n"
        "from mlwarden.cli.main import app\n"
        "from mlwarden.server.app import create_app\n"
        "from mlwarden.settings import Settings\n"
        "from fastapi.testclient import TestClient\n"
        f"with TestClient(create_app(Settings(data_dir={str(tmp_path)!r}))) as client:\n"
        "    assert client.get('/v1/models').status_code == 200\n"  # the store is open
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    assert _last_line_printed_by(code) == "[]"


def test_the_serve_command_line_imports_none_of_the_other_commands() -> None:
    """``mlwarden serve`` is the server process: the lake and Parquet, backtests, demos and
    reports of the other commands were about 5 MB of its memory (docs/benchmarks.md)."""
    code = (
        "import sys\n"
        "sys.argv = ['mlwarden', 'serve', '--help']\n"
        "import mlwarden.cli.main\n"
        "from mlwarden.cli.app import app\n"
        "names = sorted(c.name or c.callback.__name__ for c in app.registered_commands)\n"
        "loaded = ('mlwarden.cli.lake', 'mlwarden.monitor.lake', 'pyarrow.parquet')\n"
        "print(names, sorted(m for m in loaded if m in sys.modules))\n"
    )
    assert _last_line_printed_by(code) == "['serve', 'version'] []"


def test_a_server_imports_the_dashboard_and_the_diagnosis_at_their_first_use(
    tmp_path: Path,
) -> None:
    """The dashboard's pages, the monitor, the diagnosis, the operations service, bulk capture
    and diagnosis from free text were about 10 MB of every server's memory, needed by none of
    health checks, listings or predictions (docs/benchmarks.md, "Gateway overhead"): imported
    at their first use, after which they work as before."""
    lazy = [
        "mlwarden.ui.web",
        "mlwarden.ui.pages.models",
        "jinja2",
        "mlwarden.monitor.engine",
        "mlwarden.diagnose.incident",
        "mlwarden.agent.reports",
        "mlwarden.agent.operations.service",
        "mlwarden.capture.ingest",
        "mlwarden.diagnose.free_text",
    ]
    code = (
        "import json, sys\n"
        "sys.argv = ['mlwarden', 'serve', '--no-agent']\n"
        "import mlwarden.cli.main\n"
        "from mlwarden.server.app import create_app\n"
        "from mlwarden.settings import Settings\n"
        "from fastapi.testclient import TestClient\n"
        f"lazy = {lazy!r}\n"
        "seen = []\n"
        f"app = create_app(Settings(data_dir={str(tmp_path)!r}, agent_in_server=False))\n"
        "with TestClient(app) as client:\n"
        "    assert client.get('/health').status_code == 200\n"
        "    assert client.get('/v1/models').json() == []\n"
        "    root = client.get('/', follow_redirects=False)\n"
        "    assert (root.status_code, root.headers['location']) == (307, '/ui/'), root\n"
        "    seen.append(sorted(m for m in lazy if m in sys.modules))\n"
        "    page = client.get('/ui/login')\n"
        "    assert page.status_code == 200 and '<form' in page.text, page.text[:300]\n"
        "    overview = client.get('/ui/')\n"
        "    assert overview.status_code == 200, overview.text[:300]\n"
        "    assert 'text/html' in overview.headers['content-type']\n"
        "    text = {'text': 'accuracy dropped'}\n"
        "    assert client.post('/v1/diagnose', json=text).status_code == 200\n"
        "    spec = {'name': 'm', 'task': 'classification', 'features': [{'name': 'x'}]}\n"
        "    assert client.post('/v1/models', json=spec).status_code == 201\n"
        "    change = {'disabled': True, 'reason': 'first change'}\n"
        "    changed = client.patch('/v1/models/m/deployment', json=change)\n"
        "    assert (changed.status_code, changed.json()['revision']) == (200, 1), changed.text\n"
        "    seen.append(sorted(m for m in lazy if m in sys.modules))\n"
        "print(json.dumps(seen))\n"
    )
    first, later = json.loads(_last_line_printed_by(code))
    assert first == []
    assert {"mlwarden.ui.web", "mlwarden.ui.pages.models", "jinja2"} <= set(later)
    assert {"mlwarden.diagnose.free_text", "mlwarden.agent.operations.service"} <= set(later)
