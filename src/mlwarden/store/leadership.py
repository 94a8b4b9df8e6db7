"""One agent acts on a store at a time: the leadership.

A PostgreSQL advisory lock held on a dedicated connection, or an exclusive ``flock`` on a lock
file for SQLite. Both are released by the operating system or the server when the process dies,
so a second agent waiting for the lock takes over.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

from sqlalchemy import Connection, text

from mlwarden.store.repository import Store

log = logging.getLogger("mlwarden.agent")

LOCK_KEY = 7157004  # the advisory lock key of "the agent" on a PostgreSQL store


class Leadership:
    """Only one agent acts on a store: a PostgreSQL advisory lock, or a lock file for SQLite."""

    def __init__(
        self, store: Store, lock_path: Path | None = None, *, timeout_s: float = 10.0
    ) -> None:
        self.store = store
        self.lock_path = lock_path
        self.timeout_s = timeout_s
        self._conn: Connection | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fd is not None

    def acquire(self) -> bool:
        """Take the leadership if it is free (non-blocking); True while this agent holds it.

        On PostgreSQL a leader checks before each pass that its lock's connection still
        stands: a leader cut off from the database (whose session, and lock, the server ends)
        steps down instead of acting beside the replica that took over.
        """
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                self._conn.commit()
                return True
            except Exception:
                log.warning("the leadership's connection was lost; standing down")
                self.release()
        if self.held:
            return True
        if self.store.dialect == "postgresql":
            conn = self.store.engine.connect()
            # the server ends the session of a host that stops answering after about
            # timeout_s, which frees the lock for another replica (a dead process frees it
            # at once: its socket closes)
            idle = max(1, int(self.timeout_s / 2))
            interval = max(1, int(self.timeout_s / 6))
            conn.execute(text(f"SET tcp_keepalives_idle = {idle}"))
            conn.execute(text(f"SET tcp_keepalives_interval = {interval}"))
            conn.execute(text("SET tcp_keepalives_count = 3"))
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
            )
            conn.commit()
            if got:
                self._conn = conn
            else:
                conn.close()
            return got
        path = self.lock_path or self._default_lock_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def _default_lock_path(self) -> Path:
        database = self.store.engine.url.database
        if not database or database == ":memory:":
            return Path(os.environ.get("TMPDIR", "/tmp")) / "mlwarden-agent-memory.lock"
        return Path(database).with_suffix(".agent.lock")

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                self._conn.commit()
            with contextlib.suppress(Exception):  # a connection already lost
                self._conn.close()
            self._conn = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
