"""A full disk under load: failed predictions and lost records.

Runs ``mlwarden serve --no-agent`` (SQLite, the same real model as bench_gateway.py) with its
data directory (database, spill journal, capture log, server log) on a small tmpfs of its own.
Predictions flow at concurrency 8; after ``--before`` seconds a filler file takes every free
byte of that file system, stays for ``--full`` seconds and is deleted; the load goes on for
``--after`` seconds. Once the server holds nothing in memory or in its journal, every answered
record id is looked up in the database: answered but not stored = lost. Both capture modes,
default (batched) and durable, run in turn.

A second case, ``--case outage``, puts a PostgreSQL outage on top: the database is cut (the
TCP proxy of bench_outage.py) while the disk is full, so neither the database nor the spill
journal takes records, and comes back after the disk has room again.

Needs root (it mounts a tmpfs):

    .venv/bin/python bench/bench_disk_full.py [--full 30] [--case sqlite|outage]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from bench_durability import MODES, PredictLoad, stored_ids, wait_replayed
from bench_gateway import elec_workload, set_up_model
from mlwarden.server.background import ServerProcess
from mlwarden.store import Store
from mlwarden.store import tables as t

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "store"))
from pg_proxy import TcpProxy

PG_SERVER = os.environ.get("MLWARDEN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


@contextlib.contextmanager
def small_file_system(size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` mounted on a new temporary folder, unmounted after."""
    folder = Path(tempfile.mkdtemp(prefix="mlw-full-"))
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
            check=True,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        folder.rmdir()
        sys.exit(f"cannot mount a tmpfs (this benchmark needs root): {exc}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir()


def fill(folder: Path) -> Path:
    """Write a file until the file system has not one byte left; returns it."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as handle:
        for chunk in (1 << 20, 1 << 12, 1):
            block = b"\0" * chunk
            while True:
                try:
                    handle.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return filler


async def under_load(
    server: ServerProcess,
    bodies: list[bytes],
    folder: Path,
    args: argparse.Namespace,
    headers: dict[str, str],
    proxy: TcpProxy | None = None,
) -> dict[str, object]:
    load = PredictLoad(server.url, bodies, headers)
    running = asyncio.create_task(load.run(args.concurrency))
    while not load.answered and not running.done():
        await asyncio.sleep(0.05)
    await asyncio.sleep(args.before)
    if proxy is not None:
        proxy.kill()
    filler = await asyncio.to_thread(fill, folder)
    full_at = time.monotonic()
    await asyncio.sleep(min(5.0, args.full))
    async with httpx.AsyncClient(timeout=30) as client:
        health = (await client.get(server.url + "/health")).json()
    await asyncio.sleep(max(0.0, args.full - 5.0))
    filler.unlink()
    freed_at = time.monotonic()
    if proxy is not None:
        await asyncio.sleep(2.0)  # the journal takes the held records before the database is back
        proxy.start()
    await asyncio.sleep(args.after)
    load.stopping.set()
    await running

    return {
        **load.by_phase("while_full", full_at, freed_at),
        "failure_examples": sorted({message for _, message in load.failed})[:3],
        "health_while_full": {
            key: health[key] for key in ("status", "database", "records") if key in health
        },
        "ids": [rid for _, rid in load.answered],
    }


def sqlite_case(mode: str, artifact: bytes, bodies: list[bytes], args: argparse.Namespace) -> dict:
    with small_file_system(args.size_mb) as folder:
        data = folder / "data"
        server = ServerProcess(data, env=MODES[mode]).start()
        try:
            set_up_model(server.url, artifact)
            result = asyncio.run(under_load(server, bodies, folder, args, {}))
            result["health_after"] = wait_replayed(server)["status"]
        finally:
            server.stop()
        stored = stored_ids(data)
    ids = result.pop("ids")
    assert isinstance(ids, list)
    return {"case": "sqlite", "mode": mode, **result, "lost": len(set(ids) - stored)}


def outage_case(mode: str, artifact: bytes, bodies: list[bytes], args: argparse.Namespace) -> dict:
    name = f"mlw_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    direct_url = f"{PG_SERVER}/{name}"
    parsed = make_url(direct_url)
    proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    proxy.start()
    proxied = parsed.set(port=proxy.port).render_as_string(hide_password=False)
    token = "mlw_bench-disk-full-admin"
    env = {**MODES[mode], "MLWARDEN_AUTH": "true", "MLWARDEN_BOOTSTRAP_ADMIN_TOKEN": token}
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with small_file_system(args.size_mb) as folder:
            server = ServerProcess(folder / "data", env=env, database_url=proxied).start()
            try:
                set_up_model(server.url, artifact, headers)
                result = asyncio.run(under_load(server, bodies, folder, args, headers, proxy))
                result["health_after"] = wait_replayed(server)["status"]
            finally:
                server.stop()
        with Store(direct_url, migrate=False) as direct, direct.engine.connect() as conn:
            stored = set(conn.execute(select(t.records.c.id)).scalars())
    finally:
        proxy.kill()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    ids = result.pop("ids")
    assert isinstance(ids, list)
    return {"case": "outage", "mode": mode, **result, "lost": len(set(ids) - stored)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["sqlite", "outage"], default="sqlite")
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=sorted(MODES))
    parser.add_argument("--full", type=float, default=30.0, help="seconds the disk stays full")
    parser.add_argument("--before", type=float, default=3.0)
    parser.add_argument("--after", type=float, default=10.0)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    _, artifact, _, bodies = elec_workload()
    run = sqlite_case if args.case == "sqlite" else outage_case
    results = [run(mode, artifact, bodies, args) for mode in args.modes]
    print(
        json.dumps(
            {
                "full_s": args.full,
                "results": results,
                "load_average_1min_at_end": os.getloadavg()[0],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
