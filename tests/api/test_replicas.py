"""Several ``mlwarden serve`` replicas on one PostgreSQL: a change made through one is served
by the others within a second, told by PostgreSQL (LISTEN/NOTIFY) rather than found by
polling; ``--workers N`` runs N processes on one port."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from api_helpers import ELEC_ROW, deploy_elec, wait_for
from sqlalchemy import text

from mlwarden.server.background import ServerProcess
from mlwarden.store import Store


def start_all(servers: list[ServerProcess]) -> list[ServerProcess]:
    with ThreadPoolExecutor(len(servers)) as pool:
        return list(pool.map(lambda s: s.start(), servers))


def seen_within(condition: object, limit_s: float) -> float:
    """Seconds until ``condition()`` holds, polled every 10 ms; fails past ``limit_s``."""
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        elapsed = time.monotonic() - start
        assert elapsed < limit_s, f"not seen within {limit_s} s"
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.mark.postgres
@pytest.mark.slow  # starts three server processes
def test_replicas_follow_each_others_changes_at_once(
    pg_url: str, tmp_path: Path, elec_artifacts: dict[str, bytes]
) -> None:
    with Store(pg_url) as store:
        admin = store.create_token("root", "admin")
        ci = store.create_token("ci", "operator")
    # tokens required (auth on): a token check is trusted 60 s and a deployment re-read every
    # 60 s unless a notification says otherwise, so only the notification can explain < 1 s
    env = {"MLWARDEN_AUTH": "true", "MLWARDEN_NOTIFIED_CACHE_S": "60"}
    replicas = start_all(
        [ServerProcess(tmp_path / name, database_url=pg_url, env=env) for name in "abc"]
    )
    a, b, c = (
        httpx.Client(base_url=r.url, timeout=30, headers={"Authorization": f"Bearer {admin}"})
        for r in replicas
    )
    try:
        for client in (a, b, c):
            replica = client.get("/health").json()["replica"]
            assert replica["caches"] == "notified" and replica["agent"] == "off"
        assert len({client.get("/health").json()["replica"]["pid"] for client in (a, b, c)}) == 3
        deploy_elec(a, elec_artifacts)

        def version(client: httpx.Client, token: str = admin) -> int | None:
            response = client.post(
                "/v1/models/elec/predict",
                json={"instances": [ELEC_ROW]},
                headers={"Authorization": f"Bearer {token}"},
            )
            return response.json()["predictions"][0]["version"] if response.is_success else None

        # a model deployed through a, served by b and c (its route was never cached there)
        assert wait_for(lambda: version(b) == 1 and version(c) == 1, timeout_s=5)
        assert version(b, ci) == 1 and version(c, ci) == 1  # ci's token is now cached on both
        changed = a.put(
            "/v1/models/elec/deployment", json={"live_version": 2, "reason": "release 2"}
        )
        assert changed.status_code == 200
        assert seen_within(lambda: version(b) == 2, 1.0) < 1.0
        assert seen_within(lambda: version(c) == 2, 1.0) < 1.0

        # the listening connections cut (a network blip, a PostgreSQL restart): a change made
        # meanwhile is not notified, yet served (polled each second while they are cut, read
        # again when they listen again), and they listen again
        with Store(pg_url) as store, store.engine.begin() as conn:
            cut = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query = 'LISTEN mlwarden_changes' AND datname = current_database()"
                )
            ).all()
        assert len(cut) == 3
        assert (
            a.put(
                "/v1/models/elec/deployment", json={"live_version": 1, "reason": "back to 1"}
            ).status_code
            == 200
        )
        for client in (b, c):
            seen_within(lambda client=client: version(client) == 1, 5.0)  # type: ignore[misc]
            seen_within(
                lambda client=client: (
                    client.get(  # type: ignore[misc]
                        "/health"
                    ).json()["replica"]["caches"]
                    == "notified"
                ),
                5.0,
            )

        # revoked through a: refused by b and c within a second, not after the 60 s of its
        # cached check
        assert a.delete("/v1/tokens/ci").status_code in (200, 204)
        for client in (b, c):
            seen_within(
                lambda client=client: (
                    client.post(  # type: ignore[misc]
                        "/v1/models/elec/predict",
                        json={"instances": [ELEC_ROW]},
                        headers={"Authorization": f"Bearer {ci}"},
                    ).status_code
                    == 401
                ),
                1.0,
            )
    finally:
        for client in (a, b, c):
            client.close()
        for replica in replicas:
            replica.stop()


@pytest.mark.postgres
@pytest.mark.slow  # starts a server of two processes
def test_workers_share_one_port(
    pg_url: str, tmp_path: Path, elec_artifacts: dict[str, bytes]
) -> None:
    """``mlwarden serve --workers 2``: two processes answer on one port, each with its own
    record journal, and every prediction either answers is stored."""
    server = ServerProcess(tmp_path / "data", database_url=pg_url, workers=2).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            deploy_elec(client, elec_artifacts)
            pids: set[int] = set()
            answered = 0
            deadline = time.monotonic() + 20
            while len(pids) < 2 and time.monotonic() < deadline:
                # new connections: the kernel spreads them over the workers' shared socket
                with httpx.Client(base_url=server.url, timeout=30) as fresh:
                    pids.add(fresh.get("/health").json()["replica"]["pid"])
                    response = fresh.post("/v1/models/elec/predict", json={"instances": [ELEC_ROW]})
                    assert response.status_code == 200, response.text
                    answered += 1
            assert len(pids) == 2, "one process answered everything"
    finally:
        server.stop()
    journals = sorted(p.name for p in (tmp_path / "data").iterdir() if p.name.startswith("journal"))
    assert journals == ["journal", "journal-1"]
    with Store(pg_url) as store:
        assert store.count_records("elec") == answered


def test_workers_need_postgres(tmp_path: Path) -> None:
    """SQLite serves one process: asking for more is refused before anything starts."""
    from typer.testing import CliRunner

    from mlwarden.cli.main import app

    result = CliRunner().invoke(
        app,
        ["serve", "--workers", "2", "--data-dir", str(tmp_path)],
        env={"MLWARDEN_DATABASE_URL": ""},
    )
    assert result.exit_code == 2
    assert "--workers needs PostgreSQL" in result.output
    assert not (tmp_path / "journal").exists()
