"""The dashboard's signed-in sessions (``ui_sessions``): a row per session, keyed by the SHA-256
of its id, so signing out withdraws a cookie whose signature is still good."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select

from mlwarden.clock import as_utc, utcnow
from mlwarden.store import tables as t
from mlwarden.store.base import StoreBase


class SessionTables(StoreBase):
    """The ``Store``'s queries on ``ui_sessions``."""

    def start_ui_session(self, sid_hash: str, token_name: str, max_age_s: float) -> None:
        """Remember a session for ``max_age_s``; sessions already expired are forgotten."""
        now = utcnow()
        table = t.ui_sessions
        with self.engine.begin() as conn:
            conn.execute(delete(table).where(table.c.expires_at < now))
            conn.execute(
                insert(table).values(
                    sid_hash=sid_hash,
                    token_name=token_name,
                    created_at=now,
                    expires_at=now + timedelta(seconds=max_age_s),
                )
            )

    def ui_session(self, sid_hash: str) -> tuple[str, datetime] | None:
        """The token name and expiry of a remembered session, None when it is not."""
        table = t.ui_sessions
        with self.engine.connect() as conn:
            row = conn.execute(
                select(table.c.token_name, table.c.expires_at).where(table.c.sid_hash == sid_hash)
            ).first()
        return None if row is None else (row.token_name, as_utc(row.expires_at))

    def end_ui_session(self, sid_hash: str) -> None:
        table = t.ui_sessions
        with self.engine.begin() as conn:
            conn.execute(delete(table).where(table.c.sid_hash == sid_hash))
