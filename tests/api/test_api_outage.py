"""Serving through a database outage: predictions flow with auth on while PostgreSQL is cut
off (a TCP proxy between the server and the database is killed, then listens again), and every
answered prediction is stored once the database is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from api_helpers import ELEC_FEATURES, Load, deploy_elec, make_settings, wait_for
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import make_url

from mlwarden.server import create_app
from mlwarden.server.background import BackgroundServer
from mlwarden.store import Store
from mlwarden.store import tables as t
from store.pg_proxy import TcpProxy

pytestmark = pytest.mark.postgres

ROW = {n: 1.0 for n in ELEC_FEATURES}


@dataclass
class Cut:
    """A PostgreSQL database reached through a proxy that the test can cut."""

    direct: Store  # the test's own link, never cut
    proxy: TcpProxy
    url: str  # through the proxy

    def stored_ids(self) -> set[str]:
        with self.direct.engine.connect() as conn:
            return set(conn.execute(select(t.records.c.id)).scalars())


@pytest.fixture
def cut(pg_url: str) -> Iterator[Cut]:
    direct = Store(pg_url)
    parsed = make_url(pg_url)
    proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    proxy.start()
    url = parsed.set(port=proxy.port).render_as_string(hide_password=False)
    try:
        yield Cut(direct, proxy, url)
    finally:
        proxy.kill()
        direct.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.slow
def test_predictions_flow_through_a_database_outage_and_none_is_lost(
    cut: Cut, tmp_path: Path, elec_artifacts: dict[str, bytes]
) -> None:
    admin = cut.direct.create_token("root", "admin")
    operator = cut.direct.create_token("caller", "operator")
    # a short token TTL and the gateway's 1 s deployment refresh: both would ask the database
    # many times during the cut
    settings = make_settings(tmp_path, cut.url, auth=True, token_cache_ttl_s=0.5)
    store = Store(cut.url, migrate=False)
    app = create_app(settings, store=store)
    with BackgroundServer(app) as server:
        with httpx.Client(base_url=server.url, headers=bearer(admin), timeout=60) as client:
            deploy_elec(client, elec_artifacts)  # type: ignore[arg-type]
        load = Load(server.url, bearer(operator))
        threads = load.run(workers=4)
        # the caller's token has been checked valid (a token never seen is refused in an outage)
        assert wait_for(lambda: len(load.answered) >= 20, timeout_s=120)

        cut.proxy.kill()
        cut_at = time.monotonic()
        time.sleep(1.0)
        health = httpx.get(server.url + "/health", timeout=30)
        stranger = httpx.post(
            server.url + "/v1/models/elec/predict",
            json={"instances": ROW},
            headers=bearer("mlw_never-seen-token"),
            timeout=30,
        )
        time.sleep(4.0)
        cut.proxy.start()
        restored_at = time.monotonic()
        time.sleep(1.5)
        load.stop.set()
        for thread in threads:
            thread.join(60)

        state = app.state.mlwarden
        assert state.writer.flush(timeout=60)
        assert state.writer.stats.spilled == 0
        health_after = httpx.get(server.url + "/health", timeout=30).json()
    store.close()

    assert load.failed == []
    during = [rid for when, rid in load.answered if cut_at < when < restored_at]
    assert len(during) >= 10, len(during)
    assert health.status_code == 200
    assert health.json()["status"] == "degraded: database down"
    assert health.json()["database"] == "unreachable"
    # a token this server never saw valid is not let in without the database
    assert stranger.status_code == 503 and "unreachable" in stranger.json()["error"]
    assert health_after["status"] == "ok"
    answered = {rid for _, rid in load.answered}
    assert len(answered) == len(load.answered)
    assert answered - cut.stored_ids() == set()


@pytest.mark.slow
def test_tokens_during_an_outage(
    cut: Cut, tmp_path: Path, elec_artifacts: dict[str, bytes]
) -> None:
    """Recently checked tokens stay valid for a bounded time; unknown ones are refused; a token
    revoked meanwhile stops working as soon as the database answers again."""
    admin = cut.direct.create_token("root", "admin")
    tokens = {name: cut.direct.create_token(name, "operator") for name in ("alice", "carol", "bob")}
    settings = make_settings(
        tmp_path, cut.url, auth=True, token_cache_ttl_s=0.2, token_outage_grace_s=3.0
    )
    store = Store(cut.url, migrate=False)

    def status(client: TestClient, name: str) -> int:
        response = client.post(
            "/v1/models/elec/predict", json={"instances": ROW}, headers=bearer(tokens[name])
        )
        return response.status_code

    with TestClient(create_app(settings, store=store)) as client:
        client.headers.update(bearer(admin))
        deploy_elec(client, elec_artifacts)
        assert status(client, "alice") == 200 and status(client, "carol") == 200
        checked_at = time.monotonic()
        cut.proxy.kill()
        # revoked on the database (by another server) while this one cannot see it
        cut.direct.revoke_token("alice")
        time.sleep(0.5)  # past the TTL: each token is asked about again, and cannot be
        during = {name: status(client, name) for name in tokens}
        assert during == {"alice": 200, "carol": 200, "bob": 503}
        time.sleep(max(0.0, checked_at + 3.2 - time.monotonic()))
        assert status(client, "carol") == 503  # the grace is bounded

        cut.proxy.start()
        assert wait_for(lambda: status(client, "alice") == 401, timeout_s=5)
        assert status(client, "carol") == 200 and status(client, "bob") == 200
    store.close()
