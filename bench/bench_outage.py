"""Serving through a PostgreSQL outage: failed predictions and lost records.

Runs ``mlwarden serve --no-agent`` with tokens required, on a fresh PostgreSQL database at
127.0.0.1:5432 reached through a TCP proxy (tests/store/pg_proxy.py), the same real model as
bench_gateway.py. Predictions flow at concurrency 8 with an operator token; after
``--before`` seconds the proxy is killed (for the server, the database is gone: connections
reset, new ones refused) for ``--outage`` seconds, then listens again, and the load goes on
for ``--after`` seconds. Once the server has replayed its spill journal, every answered record
id is looked up in the database. The shared PostgreSQL server itself is never touched.

    .venv/bin/python bench/bench_outage.py [--outage 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from bench_durability import PredictLoad, wait_replayed
from bench_gateway import elec_workload, set_up_model
from mlwarden.server.background import ServerProcess
from mlwarden.store import Store
from mlwarden.store import tables as t

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "store"))
from pg_proxy import TcpProxy

PG_SERVER = os.environ.get("MLWARDEN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


async def scenario(
    server: ServerProcess,
    proxy: TcpProxy,
    bodies: list[bytes],
    token: str,
    args: argparse.Namespace,
) -> dict[str, object]:
    load = PredictLoad(server.url, bodies, {"Authorization": f"Bearer {token}"})
    running = asyncio.create_task(load.run(args.concurrency))
    await asyncio.sleep(args.before)
    proxy.kill()
    cut_at = time.monotonic()
    await asyncio.sleep(min(5.0, args.outage))
    async with httpx.AsyncClient(timeout=30) as client:
        health = (await client.get(server.url + "/health")).json()
    await asyncio.sleep(max(0.0, args.outage - 5.0))
    proxy.start()
    restored_at = time.monotonic()
    await asyncio.sleep(args.after)
    load.stopping.set()
    await running

    return {
        **load.by_phase("during_outage", cut_at, restored_at),
        "failure_examples": [message for _, message in load.failed[:3]],
        "health_during_outage": health,
        "ids": [rid for _, rid in load.answered],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=60.0)
    parser.add_argument("--before", type=float, default=5.0)
    parser.add_argument("--after", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    _, artifact, _, bodies = elec_workload()

    name = f"mlw_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    direct_url = f"{PG_SERVER}/{name}"
    parsed = make_url(direct_url)
    proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    proxy.start()
    proxied = parsed.set(port=proxy.port).render_as_string(hide_password=False)
    token = "mlw_bench-outage-admin"
    env = {"MLWARDEN_AUTH": "true", "MLWARDEN_BOOTSTRAP_ADMIN_TOKEN": token}
    try:
        direct = Store(direct_url)
        with tempfile.TemporaryDirectory() as folder:
            server = ServerProcess(Path(folder) / "data", env=env, database_url=proxied).start()
            try:
                set_up_model(server.url, artifact, {"Authorization": f"Bearer {token}"})
                result = asyncio.run(scenario(server, proxy, bodies, token, args))
                wait_replayed(server)
            finally:
                server.stop()
        with direct.engine.connect() as conn:
            stored = set(conn.execute(select(t.records.c.id)).scalars())
        direct.close()
    finally:
        proxy.kill()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    ids = result.pop("ids")
    assert isinstance(ids, list)
    result["lost"] = len(set(ids) - stored)
    result["outage_s"] = args.outage
    result["load_average_1min_at_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
